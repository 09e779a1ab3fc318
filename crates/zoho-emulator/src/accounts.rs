//! The accounts server's state: self clients and grant codes, and the token exchanges built on
//! them (the token tables themselves are in [`crate::tokens`]).
//!
//! A used or expired code is removed, and a client may generate only so many codes per 10 minutes,
//! so the code table is bounded too.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rand::Rng;

use crate::dc::Dc;
use crate::knobs::Knobs;
use crate::scopes::Scopes;
use crate::tokens::{token, Access, Grant, RefreshError, Tokens};

/// The window of the grant-code limit.
const CODE_WINDOW_MS: i64 = 600_000;

/// A self client.
#[derive(Debug)]
pub struct Client {
    /// Client secret.
    pub secret: String,
    /// Index of the org whose data its tokens read.
    pub org: usize,
    /// The user it acts as (the org's admin).
    pub user: u64,
    /// The one DC it is registered in.
    pub dc: Dc,
    /// When its recent grant codes were generated (for the 10-per-10-minutes rule).
    code_times: VecDeque<i64>,
}

/// An unused grant code.
#[derive(Debug)]
struct Code {
    /// The client it was generated for.
    client_id: String,
    /// Granted scopes.
    scopes: Arc<Scopes>,
    /// Expiry, epoch ms on the emulator clock.
    expires_ms: i64,
}

/// Token endpoint failures, each answered as Zoho answers it (see `oauth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Unknown client, or a client of another DC.
    InvalidClient,
    /// Wrong secret.
    InvalidClientSecret,
    /// Unknown, expired, used or foreign code; unknown or revoked refresh token.
    InvalidCode,
    /// Refresh throttle (`Access Denied`).
    Throttled,
    /// `grant_type` missing or not one the emulator serves.
    UnsupportedGrantType,
}

/// Why the console refused a grant code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeError {
    /// No such client.
    UnknownClient,
    /// More than the allowed codes in 10 minutes.
    TooMany,
}

/// A successful token answer.
#[derive(Debug)]
pub struct Minted {
    /// New access token.
    pub access_token: String,
    /// New refresh token (code exchange only; Zoho does not rotate on refresh).
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The client's DC, for `api_domain`.
    pub dc: Dc,
}

/// All accounts-server state.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Clients by id.
    clients: HashMap<String, Client>,
    /// Unused codes.
    codes: HashMap<String, Code>,
    /// Refresh and access tokens.
    tokens: Tokens,
}

impl Accounts {
    /// Registers a self client for `org`'s admin `user` in `dc`; returns `(client_id, secret)`.
    pub fn create_client(&mut self, org: usize, user: u64, dc: Dc) -> (String, String) {
        let mut rng = rand::rng();
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let id: String = (0..30)
            .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
            .collect();
        let client_id = format!("1000.{id}");
        let secret = format!(
            "{:032x}{:010x}",
            rng.random::<u128>(),
            rng.random::<u64>() >> 24
        );
        let client = Client {
            secret: secret.clone(),
            org,
            user,
            dc,
            code_times: VecDeque::new(),
        };
        self.clients.insert(client_id.clone(), client);
        (client_id, secret)
    }

    /// Generates a grant code valid for `duration_ms`, as the console's *Generate Code* does.
    pub fn create_code(
        &mut self,
        client_id: &str,
        scopes: Scopes,
        duration_ms: i64,
        now: i64,
        max_per_window: u32,
    ) -> Result<String, CodeError> {
        let client = self
            .clients
            .get_mut(client_id)
            .ok_or(CodeError::UnknownClient)?;
        client.code_times.retain(|t| now - t < CODE_WINDOW_MS);
        if client.code_times.len() >= max_per_window as usize {
            return Err(CodeError::TooMany);
        }
        client.code_times.push_back(now);
        self.codes.retain(|_, c| c.expires_ms > now);
        let code = token();
        let entry = Code {
            client_id: client_id.to_string(),
            scopes: Arc::new(scopes),
            expires_ms: now + duration_ms,
        };
        self.codes.insert(code.clone(), entry);
        Ok(code)
    }

    /// Checks client id (in this DC) and secret: the first error Zoho would report.
    fn check_client(&self, dc: Dc, client_id: &str, secret: &str) -> Result<&Client, TokenError> {
        let client = self
            .clients
            .get(client_id)
            .filter(|c| c.dc == dc)
            .ok_or(TokenError::InvalidClient)?;
        if client.secret != secret {
            return Err(TokenError::InvalidClientSecret);
        }
        Ok(client)
    }

    /// `grant_type=authorization_code`: trades a code for a refresh and an access token.
    /// The code is burnt only when everything else checks out, so a probe at the wrong DC (or
    /// with the wrong secret, or by another client) leaves it usable.
    pub fn exchange(
        &mut self,
        dc: Dc,
        client_id: &str,
        secret: &str,
        code: &str,
        now: i64,
        knobs: &Knobs,
    ) -> Result<Minted, TokenError> {
        let (org, user) = {
            let client = self.check_client(dc, client_id, secret)?;
            (client.org, client.user)
        };
        let expired = match self.codes.get(code) {
            Some(c) if c.expires_ms <= now => true,
            Some(c) if c.client_id == client_id => false,
            _ => return Err(TokenError::InvalidCode),
        };
        let scopes = self
            .codes
            .remove(code)
            .map(|c| c.scopes)
            .ok_or(TokenError::InvalidCode)?;
        if expired {
            return Err(TokenError::InvalidCode);
        }
        let scope = scopes.to_response_string();
        let grant = Grant {
            client_id: Arc::from(client_id),
            org,
            user,
            dc,
            scopes,
        };
        let refresh_token = self.tokens.issue(grant, knobs);
        let access_token = self.tokens.mint(&refresh_token, now, knobs);
        Ok(Minted {
            access_token,
            refresh_token: Some(refresh_token),
            scope,
            dc,
        })
    }

    /// `grant_type=refresh_token`: a new access token, throttled per refresh token.
    pub fn refresh(
        &mut self,
        dc: Dc,
        client_id: &str,
        secret: &str,
        refresh_token: &str,
        now: i64,
        knobs: &Knobs,
    ) -> Result<Minted, TokenError> {
        self.check_client(dc, client_id, secret)?;
        match self
            .tokens
            .refresh(dc, client_id, refresh_token, now, knobs)
        {
            Ok((access_token, scopes)) => Ok(Minted {
                access_token,
                refresh_token: None,
                scope: scopes.to_response_string(),
                dc,
            }),
            Err(RefreshError::Unknown) => Err(TokenError::InvalidCode),
            Err(RefreshError::Throttled) => Err(TokenError::Throttled),
        }
    }

    /// `POST /oauth/v2/token/revoke`: revokes a refresh token of this DC and its access tokens.
    pub fn revoke(&mut self, dc: Dc, refresh_token: &str) -> bool {
        self.tokens.revoke(dc, refresh_token)
    }

    /// The live access token `token` as the API of `dc` sees it.
    pub fn authorize(&self, dc: Dc, token: &str, now: i64) -> Option<Access> {
        self.tokens.authorize(dc, token, now)
    }

    /// Expires one access token at once (console); `false` if unknown.
    pub fn expire(&mut self, token: &str, now: i64) -> bool {
        self.tokens.expire(token, now)
    }

    /// Expires every access token (console); returns how many.
    pub fn expire_all(&mut self, now: i64) -> usize {
        self.tokens.expire_all(now)
    }

    /// `(refresh tokens, access tokens, unused codes)` held, to show the tables stay bounded.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let (refresh, access) = self.tokens.sizes();
        (refresh, access, self.codes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Accounts, String, String, Knobs) {
        let mut accounts = Accounts::default();
        let (id, secret) = accounts.create_client(0, 77, Dc::Us);
        (accounts, id, secret, Knobs::default())
    }

    fn code(a: &mut Accounts, id: &str, now: i64) -> String {
        let scopes = Scopes::parse("ZohoCRM.modules.ALL").expect("scope");
        a.create_code(id, scopes, 600_000, now, u32::MAX)
            .expect("code")
    }

    #[test]
    fn codes_are_single_use_bound_and_survive_wrong_dc() {
        let (mut a, id, secret, knobs) = setup();
        let c = code(&mut a, &id, 0);
        assert_eq!(
            a.exchange(Dc::Eu, &id, &secret, &c, 1, &knobs).err(),
            Some(TokenError::InvalidClient)
        );
        assert_eq!(
            a.exchange(Dc::Us, &id, "nope", &c, 1, &knobs).err(),
            Some(TokenError::InvalidClientSecret)
        );
        let (other, other_secret) = a.create_client(0, 77, Dc::Us);
        assert_eq!(
            a.exchange(Dc::Us, &other, &other_secret, &c, 1, &knobs)
                .err(),
            Some(TokenError::InvalidCode)
        );
        assert!(a.exchange(Dc::Us, &id, &secret, &c, 2, &knobs).is_ok());
        assert_eq!(
            a.exchange(Dc::Us, &id, &secret, &c, 3, &knobs).err(),
            Some(TokenError::InvalidCode)
        );
        let late = code(&mut a, &id, 0);
        assert_eq!(
            a.exchange(Dc::Us, &id, &secret, &late, 600_000, &knobs)
                .err(),
            Some(TokenError::InvalidCode)
        );
        assert_eq!(a.sizes().2, 0, "used and expired codes are gone");
    }

    #[test]
    fn console_limits_codes_per_client() {
        let (mut a, id, _, _) = setup();
        let scopes = Scopes::parse("ZohoCRM.org.READ").expect("scope");
        for i in 0..10 {
            a.create_code(&id, scopes.clone(), 1000, i, 10)
                .expect("code");
        }
        assert_eq!(
            a.create_code(&id, scopes.clone(), 1000, 10, 10),
            Err(CodeError::TooMany)
        );
        assert!(a
            .create_code(&id, scopes.clone(), 1000, CODE_WINDOW_MS + 5, 10)
            .is_ok());
        assert_eq!(
            a.create_code("1000.nope", scopes, 1000, 0, 10),
            Err(CodeError::UnknownClient)
        );
    }
}
