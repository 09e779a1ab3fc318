//! Refresh and access tokens: minting, the refresh throttle, the caps, revocation, validation.
//!
//! Every table is bounded however many tokens are issued: a refresh token keeps at most N live
//! access tokens (minting another evicts the oldest, as Zoho silently invalidates it) and a user
//! keeps at most M refresh tokens (the oldest is deleted with its access tokens). So a soak test
//! that refreshes forever does not grow the emulator.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rand::Rng;

use crate::dc::Dc;
use crate::knobs::Knobs;
use crate::scopes::Scopes;

/// `1000.` + 32 hex + `.` + 32 hex, the shape of Zoho's codes and tokens.
pub fn token() -> String {
    let mut rng = rand::rng();
    format!(
        "1000.{:032x}.{:032x}",
        rng.random::<u128>(),
        rng.random::<u128>()
    )
}

/// Seconds → milliseconds without overflow.
fn ms(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// Who a token acts for; shared by a refresh token and the access tokens it mints.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The self client.
    pub client_id: Arc<str>,
    /// Index of the org whose data it reads.
    pub org: usize,
    /// The user it acts as.
    pub user: u64,
    /// Its DC; the other DCs do not know its tokens.
    pub dc: Dc,
    /// Granted scopes.
    pub scopes: Arc<Scopes>,
}

/// A refresh token.
#[derive(Debug)]
struct Refresh {
    /// What it grants.
    grant: Grant,
    /// Its live access tokens, oldest first.
    active: VecDeque<String>,
    /// When it minted access tokens within the throttle window (epoch ms).
    mints: VecDeque<i64>,
    /// Throttled until this instant (epoch ms); each throttled retry pushes it out.
    locked_until_ms: i64,
}

/// A live access token: what a CRM call is authorized as.
#[derive(Clone, Debug)]
pub struct Access {
    /// What it grants.
    pub grant: Grant,
    /// Expiry, epoch ms.
    pub expires_ms: i64,
}

/// Why a refresh was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshError {
    /// Unknown, revoked or evicted refresh token, or one of another client or DC.
    Unknown,
    /// The throttle (`Access Denied`).
    Throttled,
}

/// The token tables.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Refresh tokens.
    refresh: HashMap<String, Refresh>,
    /// Access tokens.
    access: HashMap<String, Access>,
    /// Each user's refresh tokens, oldest first.
    by_user: HashMap<u64, VecDeque<String>>,
}

impl Tokens {
    /// Issues a refresh token (a code exchange); beyond the per-user cap the oldest is deleted.
    pub fn issue(&mut self, grant: Grant, knobs: &Knobs) -> String {
        let refresh_token = token();
        let user = grant.user;
        let rt = Refresh {
            grant,
            active: VecDeque::new(),
            mints: VecDeque::new(),
            locked_until_ms: 0,
        };
        self.refresh.insert(refresh_token.clone(), rt);
        let mine = self.by_user.entry(user).or_default();
        mine.push_back(refresh_token.clone());
        let mut evicted = Vec::new();
        while mine.len() > knobs.max_refresh_tokens_per_user {
            evicted.extend(mine.pop_front());
        }
        for old in evicted {
            self.revoke_any(&old);
        }
        refresh_token
    }

    /// A new access token for a refresh token of `client_id` in `dc`, throttled per refresh
    /// token; returns the token and the granted scopes.
    pub fn refresh(
        &mut self,
        dc: Dc,
        client_id: &str,
        refresh_token: &str,
        now: i64,
        knobs: &Knobs,
    ) -> Result<(String, Arc<Scopes>), RefreshError> {
        let window = ms(knobs.refresh_throttle_window_secs);
        let rt = self
            .refresh
            .get_mut(refresh_token)
            .filter(|rt| &*rt.grant.client_id == client_id && rt.grant.dc == dc)
            .ok_or(RefreshError::Unknown)?;
        rt.mints.retain(|t| now - t < window);
        if now < rt.locked_until_ms || rt.mints.len() >= knobs.refresh_throttle_max as usize {
            rt.locked_until_ms = now.saturating_add(window);
            return Err(RefreshError::Throttled);
        }
        rt.mints.push_back(now);
        let scopes = rt.grant.scopes.clone();
        Ok((self.mint(refresh_token, now, knobs), scopes))
    }

    /// Mints an access token for a refresh token, dropping its expired ones and, beyond the cap,
    /// its oldest live one.
    pub fn mint(&mut self, refresh_token: &str, now: i64, knobs: &Knobs) -> String {
        let access_token = token();
        let Some(rt) = self.refresh.get_mut(refresh_token) else {
            return access_token;
        };
        let access = &mut self.access;
        rt.active.retain(|t| {
            let live = access.get(t).is_some_and(|a| a.expires_ms > now);
            if !live {
                access.remove(t);
            }
            live
        });
        while rt.active.len() >= knobs.max_active_tokens_per_refresh_token {
            if let Some(old) = rt.active.pop_front() {
                access.remove(&old);
            }
        }
        rt.active.push_back(access_token.clone());
        let expires_ms = now.saturating_add(ms(knobs.token_ttl_secs));
        access.insert(
            access_token.clone(),
            Access {
                grant: rt.grant.clone(),
                expires_ms,
            },
        );
        access_token
    }

    /// Deletes a refresh token and its access tokens; `false` if unknown.
    fn revoke_any(&mut self, refresh_token: &str) -> bool {
        let Some(rt) = self.refresh.remove(refresh_token) else {
            return false;
        };
        for t in rt.active {
            self.access.remove(&t);
        }
        if let Some(list) = self.by_user.get_mut(&rt.grant.user) {
            list.retain(|t| t != refresh_token);
        }
        true
    }

    /// Revokes a refresh token of `dc` (the revoke endpoint of another DC does not know it).
    pub fn revoke(&mut self, dc: Dc, refresh_token: &str) -> bool {
        let known = self
            .refresh
            .get(refresh_token)
            .is_some_and(|rt| rt.grant.dc == dc);
        known && self.revoke_any(refresh_token)
    }

    /// The live access token `token` as the API of `dc` sees it.
    pub fn authorize(&self, dc: Dc, token: &str, now: i64) -> Option<Access> {
        self.access
            .get(token)
            .filter(|a| a.grant.dc == dc && a.expires_ms > now)
            .cloned()
    }

    /// Expires one access token now; `false` if unknown.
    pub fn expire(&mut self, token: &str, now: i64) -> bool {
        self.access
            .get_mut(token)
            .map(|a| a.expires_ms = a.expires_ms.min(now))
            .is_some()
    }

    /// Expires every access token now; returns how many there were.
    pub fn expire_all(&mut self, now: i64) -> usize {
        self.access
            .values_mut()
            .for_each(|a| a.expires_ms = a.expires_ms.min(now));
        self.access.len()
    }

    /// `(refresh tokens, access tokens)` held.
    pub fn sizes(&self) -> (usize, usize) {
        (self.refresh.len(), self.access.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: u64) -> Grant {
        let scopes = Arc::new(Scopes::parse("ZohoCRM.modules.ALL").expect("scope"));
        Grant {
            client_id: Arc::from("1000.C"),
            org: 0,
            user,
            dc: Dc::Us,
            scopes,
        }
    }

    #[test]
    fn tables_stay_bounded_however_many_tokens_are_minted() {
        let mut t = Tokens::default();
        let knobs = Knobs {
            refresh_throttle_max: u32::MAX,
            ..Knobs::default()
        };
        for i in 0..100 {
            let rt = t.issue(grant(7), &knobs);
            t.mint(&rt, i, &knobs);
            for j in 0..50 {
                t.refresh(Dc::Us, "1000.C", &rt, i * 1000 + j, &knobs)
                    .expect("refresh");
            }
        }
        assert_eq!(t.sizes(), (20, 20 * 15));
    }

    #[test]
    fn throttle_window_lock_and_recovery() {
        let mut t = Tokens::default();
        let knobs = Knobs::default();
        let rt = t.issue(grant(1), &knobs);
        for i in 0..10 {
            assert!(t.refresh(Dc::Us, "1000.C", &rt, i, &knobs).is_ok());
        }
        assert_eq!(
            t.refresh(Dc::Us, "1000.C", &rt, 10, &knobs).err(),
            Some(RefreshError::Throttled)
        );
        // Locked for a full window after the last throttled attempt.
        assert_eq!(
            t.refresh(Dc::Us, "1000.C", &rt, 600_009, &knobs).err(),
            Some(RefreshError::Throttled)
        );
        assert!(t.refresh(Dc::Us, "1000.C", &rt, 1_200_010, &knobs).is_ok());
        assert_eq!(
            t.refresh(Dc::Eu, "1000.C", &rt, 1_200_011, &knobs).err(),
            Some(RefreshError::Unknown)
        );
        assert_eq!(
            t.refresh(Dc::Us, "1000.D", &rt, 1_200_011, &knobs).err(),
            Some(RefreshError::Unknown)
        );
        assert!(!t.revoke(Dc::Eu, &rt));
        assert!(t.revoke(Dc::Us, &rt));
        assert_eq!(
            t.refresh(Dc::Us, "1000.C", &rt, 1_200_012, &knobs).err(),
            Some(RefreshError::Unknown)
        );
    }
}
