//! The event, its JSON envelope (the request body) and the HMAC-SHA256 signature.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// Version of the JSON envelope (`version` field); bumped on incompatible changes.
pub const PAYLOAD_VERSION: u32 = 1;
/// Header carrying the event id (the idempotency key).
pub const EVENT_ID_HEADER: &str = "X-Ocireg-Event-Id";
/// Header carrying the 1-based attempt number of this delivery (restarts at 1 after a restart).
pub const ATTEMPT_HEADER: &str = "X-Ocireg-Delivery-Attempt";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Ocireg-Signature";

/// What happened to the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A manifest was stored (by tag or by digest).
    Push,
    /// A manifest (by digest) or a tag was deleted.
    Delete,
}

/// One registry event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique id (UUID v4); receivers deduplicate by it.
    pub id: Uuid,
    /// When the event happened, RFC 3339 in UTC.
    pub timestamp: String,
    /// `push` or `delete`.
    pub action: Action,
    /// Repository name, e.g. `provisioning-extensions/aws/vpc`.
    pub repository: String,
    /// The tag, when the request named a tag (`null` for a request by digest).
    pub tag: Option<String>,
    /// Digest of the manifest.
    pub digest: String,
    /// Media type of the manifest.
    pub media_type: String,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// Authenticated user who made the request (`null` when auth is off or anonymous).
    pub actor: Option<String>,
}

impl Event {
    /// A new event with a fresh id and the current time; set `tag` and `actor` afterwards.
    pub fn new(
        action: Action,
        repository: impl Into<String>,
        digest: impl Into<String>,
        media_type: impl Into<String>,
        size: u64,
    ) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| now.unix_timestamp().to_string());
        Self {
            id: Uuid::new_v4(),
            timestamp,
            action,
            repository: repository.into(),
            tag: None,
            digest: digest.into(),
            media_type: media_type.into(),
            size,
            actor: None,
        }
    }
}

/// The request body: `{"version": 1, "event": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`PAYLOAD_VERSION`].
    pub version: u32,
    /// The event.
    pub event: Event,
}

impl Envelope {
    /// Wraps an event in the current envelope version.
    pub fn new(event: Event) -> Self {
        Self {
            version: PAYLOAD_VERSION,
            event,
        }
    }

    /// The JSON body sent to endpoints.
    pub fn to_body(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// Parses a body (what a receiver does).
    pub fn from_body(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The `X-Ocireg-Signature` value for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error arm cannot happen.
    match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Checks a `X-Ocireg-Signature` value against `body` in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Only the id of a stored body (for the header), without parsing the whole event.
#[derive(Deserialize)]
pub(crate) struct IdOnly {
    pub(crate) event: IdField,
}

/// See [`IdOnly`].
#[derive(Deserialize)]
pub(crate) struct IdField {
    pub(crate) id: Uuid,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn envelope_round_trip_and_fields() {
        let mut ev = Event::new(Action::Push, "a/b", "sha256:00", "m", 12);
        ev.tag = Some("v1".into());
        let body = Envelope::new(ev.clone()).to_body().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["event"]["action"], "push");
        assert_eq!(v["event"]["mediaType"], "m");
        assert_eq!(v["event"]["actor"], serde_json::Value::Null);
        assert!(v["event"]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(Envelope::from_body(&body).unwrap().event, ev);
    }

    #[test]
    fn signature_verifies_and_rejects_tampering() {
        let sig = sign(b"key", b"body");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify(b"key", b"body", &sig));
        assert!(!verify(b"key", b"bodx", &sig));
        assert!(!verify(b"kez", b"body", &sig));
        assert!(!verify(b"key", b"body", "sha256=zz"));
    }
}
