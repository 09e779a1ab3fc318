//! Dead letters: look at them, and move them back to work once their cause is fixed.
//!
//! A dead letter is the original message (body and headers) plus why it died. The consumer
//! runner writes the reason into `x-pledgesync-error`; a message that RabbitMQ itself
//! dead-lettered (its delivery limit ran out without the runner noticing) carries RabbitMQ's
//! `x-death` instead, and its reason is read from there.
//!
//! Listing fetches dead letters without acknowledging them and hands them all back at the end,
//! so it removes nothing; while a listing runs, the letters it holds are invisible to a
//! concurrent redrive. Redriving publishes each chosen letter back to its work queue with a
//! confirm and only then removes it from the dead-letter queue: a crash in between leaves a
//! duplicate, never a loss, and the consumers are idempotent.

use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use pledgesync_core::RunId;
use serde::Serialize;

use crate::connection::Broker;
use crate::error::{BrokerError, PublishError};
use crate::headers;
use crate::publish::{PublishOptions, Route};
use crate::topology::WorkQueue;

/// One dead letter as a person (or the scheduler's API) reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The publisher's message id.
    pub message_id: Option<String>,
    /// The message kind (`SyncJob`, `RecordBatch`) from the AMQP `type` property.
    pub kind: Option<String>,
    /// Why it is dead: the runner's `x-pledgesync-error`, or RabbitMQ's `x-death` reason.
    pub reason: Option<String>,
    /// The work queue it was taken from.
    pub source_queue: Option<String>,
    /// When the runner dead-lettered it (RFC 3339), if the runner did.
    pub failed_at: Option<String>,
    /// The run it belongs to, if the body is JSON with a `run_id`.
    pub run_id: Option<RunId>,
    /// Size of the body in bytes.
    pub body_bytes: usize,
    /// Every header, as JSON.
    pub headers: serde_json::Map<String, serde_json::Value>,
}

impl DeadLetter {
    fn read(message: &BasicGetMessage) -> Self {
        let properties = &message.delivery.properties;
        let table = properties.headers().as_ref();
        let death = first_death(table);
        Self {
            message_id: properties.message_id().as_ref().map(ToString::to_string),
            kind: properties.kind().as_ref().map(ToString::to_string),
            reason: headers::string(table, headers::ERROR).or_else(|| {
                death
                    .and_then(|d| death_field(d, "reason"))
                    .map(|r| format!("RabbitMQ: {r}"))
            }),
            source_queue: headers::string(table, headers::SOURCE_QUEUE)
                .or_else(|| death.and_then(|d| death_field(d, "queue"))),
            failed_at: headers::string(table, headers::FAILED_AT),
            run_id: run_id_of(&message.delivery.data),
            body_bytes: message.delivery.data.len(),
            headers: table.map(headers::table_to_json).unwrap_or_default(),
        }
    }
}

/// The newest entry of RabbitMQ's `x-death` list.
fn first_death(table: Option<&FieldTable>) -> Option<&FieldTable> {
    match table?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().iter().find_map(|death| match death {
            AMQPValue::FieldTable(death) => Some(death),
            _ => None,
        }),
        _ => None,
    }
}

fn death_field(death: &FieldTable, key: &str) -> Option<String> {
    headers::string(Some(death), key)
}

/// The `run_id` of a JSON body, whatever else the body holds (it may be the malformed one).
fn run_id_of(body: &[u8]) -> Option<RunId> {
    #[derive(serde::Deserialize)]
    struct Probe {
        run_id: RunId,
    }
    serde_json::from_slice::<Probe>(body)
        .ok()
        .map(|probe| probe.run_id)
}

impl Broker {
    /// Up to `limit` dead letters of `queue`, oldest first, left in place.
    pub async fn dead_letters(
        &self,
        queue: WorkQueue,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let dead_queue = self.topology().dead_queue(queue);
        let channel = self.channel().await?;
        let mut letters = Vec::new();
        let mut last_tag = None;
        while letters.len() < limit {
            let Some(message) = get(&channel, &dead_queue).await? else {
                break;
            };
            last_tag = Some(message.delivery.delivery_tag);
            letters.push(DeadLetter::read(&message));
        }
        give_back(&channel, last_tag).await;
        Ok(letters)
    }

    /// Moves the dead letters of `queue` back to `queue`: all of them, or those of one run.
    /// Returns how many were moved. A letter that dies again while the redrive runs is left in
    /// the dead-letter queue (each pass marks what it moves), so a hopeless message is not
    /// redriven in a loop. Letters that another listing or redrive holds at that moment are not
    /// seen; run it again to move them.
    pub async fn redrive(
        &self,
        queue: WorkQueue,
        run: Option<RunId>,
    ) -> Result<usize, PublishError> {
        let topology = self.topology();
        let dead_queue = topology.dead_queue(queue);
        let channel = self.channel().await?;
        let (exchange, destination) = (topology.exchange(), topology.queue(queue));
        let route = Route {
            exchange: &exchange,
            routing_key: queue.as_str(),
            destination: &destination,
            label: queue.as_str(),
        };
        let pass = format!("{:016x}", rand::random::<u64>());
        let mut moved = 0;
        let mut last_kept = None;
        let mut outcome = Ok(());
        loop {
            let message = match get(&channel, &dead_queue).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    outcome = Err(error.into());
                    break;
                }
            };
            let headers = message.delivery.properties.headers().as_ref();
            let died_again =
                headers::string(headers, headers::REDRIVE_PASS).as_deref() == Some(pass.as_str());
            if died_again || (run.is_some() && run != run_id_of(&message.delivery.data)) {
                // Held unacked until the end, so the next get moves on to the next letter.
                last_kept = Some(message.delivery.delivery_tag);
                continue;
            }
            let properties = revived_properties(&message, &pass);
            let message_id = message
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string);
            let options = PublishOptions::new(message_id.unwrap_or_default());
            if let Err(error) = self
                .publish_confirmed(&route, &message.delivery.data, properties, &options)
                .await
            {
                outcome = Err(error);
                break;
            }
            if let Err(source) = message.delivery.ack(BasicAckOptions::default()).await {
                // The copy is in the work queue already; the dead one stays too. A duplicate is
                // harmless, a loss would not be.
                outcome = Err(BrokerError::amqp("basic.ack", source).into());
                break;
            }
            moved += 1;
        }
        // Unacked letters (kept, or not reached after an error) go back to the dead-letter queue
        // when the channel closes; nack them first to say so explicitly.
        give_back(&channel, last_kept).await;
        tracing::info!(queue = %queue, run = ?run, moved, "dead letters redriven");
        metrics::counter!("pledgesync_dead_letters_redriven_total", "queue" => queue.as_str())
            .increment(moved as u64);
        outcome.map(|()| moved)
    }
}

async fn get(channel: &Channel, queue: &str) -> Result<Option<BasicGetMessage>, BrokerError> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .map_err(|source| {
            if crate::error::reply_code(&source) == Some(crate::error::NOT_FOUND) {
                BrokerError::QueueNotFound {
                    queue: queue.to_owned(),
                }
            } else {
                BrokerError::amqp("basic.get", source)
            }
        })
}

/// Hands every unacknowledged message of `channel` back to its queue and closes the channel.
async fn give_back(channel: &Channel, last_tag: Option<u64>) {
    if let Some(tag) = last_tag {
        let all_up_to = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if let Err(error) = channel.basic_nack(tag, all_up_to).await {
            tracing::debug!(error = %error, "nack of held dead letters failed; closing the channel returns them");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), channel.close(200, "OK".into())).await;
}

/// The properties of a dead letter made fit for work again: the failure headers and
/// RabbitMQ's bookkeeping go, the trace context stays, and a redrive count is kept.
fn revived_properties(message: &BasicGetMessage, pass: &str) -> lapin::BasicProperties {
    let old = message.delivery.properties.headers().as_ref();
    let redriven = headers::unsigned(old, headers::REDRIVEN)
        .unwrap_or(0)
        .saturating_add(1);
    let mut table = headers::without(old, |key| {
        key.starts_with("x-pledgesync-")
            || matches!(
                key,
                "x-death"
                    | "x-first-death-exchange"
                    | "x-first-death-queue"
                    | "x-first-death-reason"
            )
            || key.starts_with("x-last-death-")
            || key == headers::DELIVERY_COUNT
    });
    table.insert(
        headers::REDRIVEN.into(),
        AMQPValue::LongLongInt(i64::try_from(redriven).unwrap_or(i64::MAX)),
    );
    table.insert(
        headers::REDRIVE_PASS.into(),
        AMQPValue::LongString(pass.to_owned().into()),
    );
    message
        .delivery
        .properties
        .clone()
        .with_delivery_mode(2)
        .with_headers(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_read_from_any_json_body_with_one() {
        let run = RunId::new();
        let body = serde_json::json!({ "run_id": run.to_string(), "schema_version": 99, "x": [1] });
        assert_eq!(run_id_of(body.to_string().as_bytes()), Some(run));
        assert_eq!(run_id_of(b"not json"), None);
        assert_eq!(run_id_of(br#"{"run_id":"nope"}"#), None);
    }
}
