//! What can go wrong talking to RabbitMQ, and whether trying again can help.
//!
//! Every error says whether it is retryable: a dropped connection, a nack or a missing confirm
//! are (publish again, RabbitMQ deduplicates nothing but the consumers are idempotent); a refused
//! login, a missing queue or a topology that does not match are not (an operator must act).

use std::time::Duration;

use lapin::ErrorKind;

/// AMQP reply codes that say "do not retry, fix something".
pub(crate) const ACCESS_REFUSED: u16 = 403;
pub(crate) const NOT_FOUND: u16 = 404;
pub(crate) const PRECONDITION_FAILED: u16 = 406;
const CONTENT_TOO_LARGE: u16 = 311;
const NO_ROUTE: u16 = 312;
const NOT_ALLOWED: u16 = 530;
const NOT_IMPLEMENTED: u16 = 540;

/// Whether an operation that failed may succeed when tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The broker went away or was busy: back off and try again.
    Retryable,
    /// Configuration or topology is wrong: trying again fails the same way.
    Permanent,
}

/// The AMQP reply code carried by a protocol error, if any.
pub(crate) fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// Sorts a lapin error into retryable and permanent.
pub fn classify(error: &lapin::Error) -> ErrorClass {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.get_id() {
            ACCESS_REFUSED | NOT_FOUND | PRECONDITION_FAILED | CONTENT_TOO_LARGE | NO_ROUTE
            | NOT_ALLOWED | NOT_IMPLEMENTED => ErrorClass::Permanent,
            // CONNECTION_FORCED (an operator or a restarting node closed us), RESOURCE_LOCKED,
            // INTERNAL_ERROR, frame errors: a new connection may well succeed.
            _ => ErrorClass::Retryable,
        },
        ErrorKind::IOError(_)
        | ErrorKind::InvalidChannel(_)
        | ErrorKind::InvalidChannelState(..)
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::MissingHeartbeatError
        | ErrorKind::ChannelsLimitReached => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

/// RabbitMQ could not be reached or refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot connect to RabbitMQ (tried {attempts} times over {waited:?}): {source}; \
         check that RabbitMQ is running and that rabbitmq.url names the right host, vhost and user"
    )]
    Connect {
        attempts: u32,
        waited: Duration,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ failed the {operation}: {source}")]
    Amqp {
        operation: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "{name} already exists in RabbitMQ with different arguments: {source}; quorum queue arguments \
         cannot change in place: drain and delete the queue, or set rabbitmq.delivery_limit back"
    )]
    TopologyMismatch {
        name: String,
        #[source]
        source: lapin::Error,
    },
    #[error("queue {queue} does not exist in RabbitMQ; start a pledgesync binary so that it declares its topology")]
    QueueNotFound { queue: String },
    #[error("the broker connection was closed by this process; no more work can be done with it")]
    Closed,
}

impl BrokerError {
    pub(crate) fn amqp(operation: &'static str, source: lapin::Error) -> Self {
        Self::Amqp { operation, source }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Connect { source, .. } | Self::Amqp { source, .. } => classify(source),
            Self::TopologyMismatch { .. } | Self::QueueNotFound { .. } | Self::Closed => {
                ErrorClass::Permanent
            }
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}

/// A message could not be stored by RabbitMQ. Nothing was lost: the caller still holds the
/// message and decides whether to publish again (retryable) or to fail its work (permanent).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "RabbitMQ could not route the message to {destination} ({reply_code} {reply_text}); \
         the queue is missing: start a pledgesync binary so that it declares the topology"
    )]
    Unroutable {
        destination: String,
        reply_code: u16,
        reply_text: String,
    },
    #[error("RabbitMQ refused (nacked) the message to {destination}, usually for lack of disk or memory; publish it again later")]
    Nacked { destination: String },
    #[error("RabbitMQ did not confirm the message to {destination} within {timeout:?}; it may or may not be stored, publish it again")]
    ConfirmTimeout {
        destination: String,
        timeout: Duration,
    },
    #[error("publishing to {destination} failed before RabbitMQ confirmed it: {source}")]
    Amqp {
        destination: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "the {property} of a message may be at most 255 bytes, this one has {length}; shorten it"
    )]
    PropertyTooLong {
        property: &'static str,
        length: usize,
    },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl PublishError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unroutable { .. } | Self::PropertyTooLong { .. } => ErrorClass::Permanent,
            Self::Nacked { .. } | Self::ConfirmTimeout { .. } => ErrorClass::Retryable,
            Self::Amqp { source, .. } => classify(source),
            Self::Broker(err) => err.class(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// A short label for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Unroutable { .. } => "unroutable",
            Self::PropertyTooLong { .. } => "invalid",
            Self::Nacked { .. } => "nacked",
            Self::ConfirmTimeout { .. } => "confirm_timeout",
            Self::Amqp { .. } => "amqp",
            Self::Broker(_) => "connection",
        }
    }
}

/// A consumer stopped for a reason other than shutdown, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("the consumer of {queue} cannot go on: {source}")]
    Broker {
        queue: String,
        #[source]
        source: BrokerError,
    },
    #[error(
        "{in_flight} deliveries of {queue} were still being handled when the grace period of {grace:?} ran out; \
         they were abandoned and RabbitMQ will deliver them again"
    )]
    GracePeriodExceeded {
        queue: String,
        in_flight: usize,
        grace: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};
    use std::sync::Arc;

    fn protocol(kind: AMQPErrorKind) -> lapin::Error {
        ErrorKind::ProtocolError(AMQPError::new(kind, "test".into())).into()
    }

    #[test]
    fn dropped_connections_are_retryable_and_wrong_setups_are_not() {
        let io: lapin::Error = ErrorKind::IOError(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
        .into();
        assert_eq!(classify(&io), ErrorClass::Retryable);
        assert_eq!(
            classify(&protocol(AMQPErrorKind::Hard(
                AMQPHardError::CONNECTIONFORCED
            ))),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify(&protocol(AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&protocol(AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED))),
            ErrorClass::Permanent
        );
        let publish = PublishError::Nacked {
            destination: "x".into(),
        };
        assert!(publish.is_retryable());
        assert!(!BrokerError::Closed.is_retryable());
    }
}
