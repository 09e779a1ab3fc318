//! Stateless `page_token`s.
//!
//! Zoho's page tokens are opaque (≤ 96 chars), bound to the request parameters and the user, and
//! expire after 24 hours. The emulator keeps no table of them — memory must not grow with pages
//! served — so everything is inside the token: the offset of the page it leads to, when it
//! expires, a hash of the bound parameters, and the user, authenticated with HMAC-SHA256 under a
//! per-process secret. 37 bytes, hex-encoded: 74 characters.

use sha2::{Digest, Sha256};

/// Page tokens live 24 hours (reference §5).
pub const TOKEN_TTL_SECS: i64 = 24 * 3600;
/// Token navigation stops at 100,000 records.
pub const TOKEN_RECORD_LIMIT: usize = 100_000;
/// `page` navigation reaches only the first 2,000 records.
pub const PAGE_RECORD_LIMIT: usize = 2_000;

/// Format version byte, so a future layout change rejects old tokens instead of misreading them.
const VERSION: u8 = 1;
/// Bytes of the authenticated payload.
const PAYLOAD: usize = 1 + 4 + 4 + 8 + 8;
/// Bytes of the truncated MAC (96 bits: forging one by chance is hopeless in a test run).
const MAC: usize = 12;

/// What a page token carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageToken {
    /// Offset of the first record of the page the token leads to.
    pub offset: u32,
    /// Expiry, Unix seconds.
    pub expires_at: u32,
    /// Hash of the parameters the token is bound to ([`params_hash`]).
    pub params: u64,
    /// The user the token was issued to.
    pub user: u64,
}

/// Encodes and verifies page tokens under one secret.
#[derive(Clone)]
pub struct Codec {
    /// HMAC key.
    key: [u8; 32],
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec { key: <redacted> }")
    }
}

impl Codec {
    /// A codec with the given secret.
    pub fn new(key: [u8; 32]) -> Codec {
        Codec { key }
    }

    /// Serializes and signs a token.
    pub fn encode(&self, token: &PageToken) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD + MAC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&token.offset.to_be_bytes());
        bytes.extend_from_slice(&token.expires_at.to_be_bytes());
        bytes.extend_from_slice(&token.params.to_be_bytes());
        bytes.extend_from_slice(&token.user.to_be_bytes());
        let mac = hmac_sha256(&self.key, &bytes);
        bytes.extend_from_slice(&mac[..MAC]);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Verifies and parses a token; `None` for anything not minted by this codec.
    pub fn decode(&self, text: &str) -> Option<PageToken> {
        let bytes = from_hex(text)?;
        if bytes.len() != PAYLOAD + MAC || bytes[0] != VERSION {
            return None;
        }
        let (payload, mac) = bytes.split_at(PAYLOAD);
        let expected = hmac_sha256(&self.key, payload);
        let diff = expected[..MAC]
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        let u32_at = |i: usize| {
            payload
                .get(i..i + 4)?
                .try_into()
                .ok()
                .map(u32::from_be_bytes)
        };
        let u64_at = |i: usize| {
            payload
                .get(i..i + 8)?
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
        };
        Some(PageToken {
            offset: u32_at(1)?,
            expires_at: u32_at(5)?,
            params: u64_at(9)?,
            user: u64_at(17)?,
        })
    }
}

/// The hash a token is bound to: the module and every query parameter except `page` and
/// `page_token` (sorted, so order does not matter), plus the If-Modified-Since instant.
pub fn params_hash(module: &str, params: &[(String, String)], since_ms: Option<i64>) -> u64 {
    let mut pairs: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "page" && k != "page_token")
        .collect();
    pairs.sort();
    let mut hasher = Sha256::new();
    hasher.update(module.to_ascii_lowercase().as_bytes());
    for (k, v) in pairs {
        hasher.update([0]);
        hasher.update(k.as_bytes());
        hasher.update([1]);
        hasher.update(v.as_bytes());
    }
    if let Some(since) = since_ms {
        hasher.update([2]);
        hasher.update(since.to_be_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// HMAC-SHA256 (RFC 2104), written out because it is ten lines on top of `sha2`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Decodes lower- or upper-case hex; `None` on odd length or other characters.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) || text.len() > 2 * (PAYLOAD + MAC) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_round_trip_and_fit_zoho_length() {
        let codec = Codec::new([7; 32]);
        let token = PageToken {
            offset: 99_800,
            expires_at: 1_900_000_000,
            params: 0xDEAD_BEEF,
            user: 42,
        };
        let text = codec.encode(&token);
        assert!(text.len() <= 96, "{} chars", text.len());
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(codec.decode(&text), Some(token));
        assert_eq!(codec.decode(&text.to_uppercase()), Some(token));
    }

    #[test]
    fn tampered_foreign_and_garbage_tokens_are_rejected() {
        let codec = Codec::new([7; 32]);
        let text = codec.encode(&PageToken {
            offset: 200,
            expires_at: 1,
            params: 2,
            user: 3,
        });
        // Move the offset: the MAC no longer matches.
        let mut tampered = text.clone().into_bytes();
        tampered[8] = if tampered[8] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(codec.decode(&tampered), None);
        assert_eq!(Codec::new([8; 32]).decode(&text), None);
        for garbage in [
            "",
            "zz",
            "abc",
            "c8582xx9e7c7",
            &"0".repeat(74),
            &"a".repeat(10_000),
            "ü",
        ] {
            assert_eq!(codec.decode(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn binding_ignores_order_page_and_token_but_not_values() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = params_hash(
            "Contacts",
            &p(&[("fields", "Email"), ("per_page", "200"), ("page", "1")]),
            None,
        );
        let b = params_hash(
            "contacts",
            &p(&[
                ("per_page", "200"),
                ("page_token", "x"),
                ("fields", "Email"),
            ]),
            None,
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            params_hash(
                "Contacts",
                &p(&[("fields", "Email"), ("per_page", "100")]),
                None
            )
        );
        assert_ne!(
            a,
            params_hash(
                "Contacts",
                &p(&[("fields", "Email"), ("per_page", "200")]),
                Some(1)
            )
        );
        assert_ne!(
            a,
            params_hash(
                "Leads",
                &p(&[("fields", "Email"), ("per_page", "200")]),
                None
            )
        );
    }
}
