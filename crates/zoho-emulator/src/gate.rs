//! What every CRM call goes through before its handler: DC, faults, authentication, scope,
//! concurrency, latency, credits — in the order a client would observe them.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::dc::Dc;
use crate::knobs::Knobs;
use crate::org::Org;
use crate::params::{version, CrmPath};
use crate::reply;
use crate::schema::Module;
use crate::scopes::Need;
use crate::state::{lock, Slot, State};
use crate::tokens::Access;

/// An admitted CRM call.
#[derive(Debug)]
pub struct Caller {
    /// The org the token reads.
    pub org: Arc<Org>,
    /// The token.
    pub access: Access,
    /// Knobs as of the start of the call.
    pub knobs: Arc<Knobs>,
    /// Credit budget in force for the org (0 = unlimited).
    budget: u64,
    /// The concurrency slot, held until the answer is built.
    _slot: Slot,
}

/// Resolves the DC a path addresses: `/dc/{dc}/…` or the default for unprefixed paths.
pub fn resolve_dc(state: &State, dc: Option<&str>) -> Option<Dc> {
    match dc {
        None => Some(state.default_dc),
        Some(code) => Dc::parse(code),
    }
}

/// Sleeps the configured latency (real time: it is about wall-clock slowness, not expiry).
pub async fn delay(knobs: &Knobs) {
    if knobs.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
    }
}

/// The access token of a `Zoho-oauthtoken …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Zoho-oauthtoken") && !token.is_empty()).then_some(token)
}

/// The opening every module read (`/crm/{version}/{module}/…`) shares: a known API version, a
/// caller admitted with the right to read the module, and the module. `Err` is the answer to send:
/// an unknown module is refused after admission, and counted against the caller like any answer.
pub async fn admit_module_read(
    state: &Arc<State>,
    path: &CrmPath,
    headers: &HeaderMap,
) -> Result<(u8, Caller, Module), Response> {
    let Some(version) = version(&path.version) else {
        return Err(reply::invalid_url());
    };
    let module = path.module.as_deref().and_then(Module::parse);
    let caller = admit(
        state,
        path.dc.as_deref(),
        headers,
        module.map(Need::ModuleRead),
    )
    .await?;
    match module {
        Some(module) => Ok((version, caller, module)),
        None => Err(caller.finish(state, reply::invalid_module())),
    }
}

/// Admits a call or answers it with the error Zoho would give.
pub async fn admit(
    state: &Arc<State>,
    dc: Option<&str>,
    headers: &HeaderMap,
    need: Option<Need>,
) -> Result<Caller, Response> {
    let knobs = state.knobs();
    let Some(dc) = resolve_dc(state, dc) else {
        return Err(reply::invalid_url());
    };
    if state.roll(knobs.drop_rate) {
        delay(&knobs).await;
        return Err(reply::dropped());
    }
    let now = state.clock.now_ms();
    let access = match bearer(headers) {
        None => Err(reply::authentication_failure()),
        Some(token) => lock(&state.accounts)
            .authorize(dc, token, now)
            .ok_or_else(reply::invalid_token),
    };
    let access = match access {
        Ok(a) => a,
        Err(resp) => {
            delay(&knobs).await;
            return Err(resp);
        }
    };
    let org = state.org(access.grant.org);
    let (Some(org), true) = (org, need.is_none_or(|n| access.grant.scopes.allows(n))) else {
        delay(&knobs).await;
        return Err(reply::scope_mismatch());
    };
    state.stats.with(|c| c.org(&org.id).api_calls += 1);
    let limit = org.concurrency_limit.unwrap_or(knobs.concurrency_limit);
    let Some(slot) = state.acquire(access.grant.org, access.grant.client_id.clone(), limit) else {
        state.stats.with(|c| {
            c.concurrency_rejections += 1;
            c.org(&org.id).rejected_429 += 1;
        });
        return Err(reply::too_many_requests());
    };
    delay(&knobs).await;
    if state.roll(knobs.error_rate_5xx) {
        state.stats.with(|c| c.injected_5xx += 1);
        return Err(reply::internal_error());
    }
    let budget = org.daily_credits.unwrap_or(knobs.daily_credits);
    if budget > 0 {
        let now_secs = state.clock.now_secs();
        let mut credits = lock(&org.credits);
        if credits.used(now_secs) >= budget {
            drop(credits);
            state.stats.with(|c| {
                c.credit_rejections += 1;
                c.org(&org.id).rejected_429 += 1;
            });
            let mut resp = reply::too_many_requests();
            resp.headers_mut()
                .insert("X-API-CREDITS-REMAINING", HeaderValue::from_static("0"));
            return Err(resp);
        }
        // Reserve the credit now so concurrent calls cannot overspend; refunded on errors.
        credits.spend(now_secs, 1);
    }
    Ok(Caller {
        org,
        access,
        knobs,
        budget,
        _slot: slot,
    })
}

impl Caller {
    /// Settles credits for the handler's answer: errors cost nothing, and once half the budget is
    /// spent the answer carries `X-API-CREDITS-REMAINING`.
    pub fn finish(self, state: &State, mut resp: Response) -> Response {
        let failed = resp.status().is_client_error() || resp.status().is_server_error();
        if self.budget > 0 {
            let mut credits = lock(&self.org.credits);
            if failed {
                credits.refund(1);
            }
            let used = credits.used(state.clock.now_secs());
            drop(credits);
            if used.saturating_mul(2) >= self.budget {
                let remaining = self.budget.saturating_sub(used);
                if let Ok(v) = HeaderValue::from_str(&remaining.to_string()) {
                    resp.headers_mut().insert("X-API-CREDITS-REMAINING", v);
                }
            }
        }
        if !failed {
            state.stats.with(|c| {
                c.credits_used += 1;
                c.org(&self.org.id).credits_used += 1;
            });
        }
        resp
    }
}

/// The status a handler answers when a listing is empty: 304 (or the knob's 204) when the client
/// sent If-Modified-Since, else 204.
pub fn empty_status(knobs: &Knobs, conditional: bool) -> StatusCode {
    if conditional {
        StatusCode::from_u16(knobs.not_modified_status).unwrap_or(StatusCode::NOT_MODIFIED)
    } else {
        StatusCode::NO_CONTENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zoho_oauthtoken_headers_carry_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            "authorization",
            HeaderValue::from_static("Zoho-oauthtoken 1000.abc.def"),
        );
        assert_eq!(bearer(&h), Some("1000.abc.def"));
        h.insert(
            "authorization",
            HeaderValue::from_static("zoho-oauthtoken   1000.x "),
        );
        assert_eq!(bearer(&h), Some("1000.x"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer 1000.abc.def"),
        );
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Zoho-oauthtoken"));
        assert_eq!(bearer(&h), None);
    }
}
