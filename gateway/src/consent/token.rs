//! The consent token: the claims a citizen consented to, signed with the
//! gateway's key, in one opaque string an agency carries.
//!
//! ```text
//! token  = base64url(claims) "." base64url(signature)      (no padding)
//! claims = JSON {"v":1, "id":"<uuid v7>", "pid":"001089012345",
//!                "agency":"vietcombank", "purpose":"CREDIT_APPLICATION",
//!                "fields":["current_residence"], "iat":1795000000,
//!                "exp":1797592000}                          (unix seconds)
//! signature = Ed25519 over "lienthong consent v1\0" ‖ claims bytes
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::disclose::Field;
use crate::signing::{Context, SIGNATURE_LEN, SigningKey, VerifyingKey};

/// Longest token accepted; a real one is a few hundred bytes.
const MAX_TOKEN: usize = 4096;

/// What a citizen consented to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version (1).
    pub v: u8,
    /// The consent's id.
    pub id: String,
    /// The citizen's Pid, as 12 digits.
    pub pid: String,
    /// The agency that may see the fields.
    pub agency: String,
    /// For this purpose only.
    pub purpose: String,
    /// These fields only.
    pub fields: Vec<Field>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Signs `claims` into a token.
pub fn seal(claims: &Claims, key: &SigningKey) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialize");
    let signature = key.sign(Context::Consent, &body);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The claims of `token` if the gateway signed it; `None` for anything
/// malformed, altered or signed by another key.
pub fn open(token: &str, key: &VerifyingKey) -> Option<Claims> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let (body, signature) = token.split_once('.')?;
    let body = URL_SAFE_NO_PAD.decode(body).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if signature.len() != SIGNATURE_LEN || !key.verify(Context::Consent, &body, &signature) {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&body).ok()?;
    (claims.v == 1).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            v: 1,
            id: "0193-consent".into(),
            pid: "001089012345".into(),
            agency: "vietcombank".into(),
            purpose: "CREDIT_APPLICATION".into(),
            fields: vec![Field::CurrentResidence],
            iat: 1_795_000_000,
            exp: 1_797_592_000,
        }
    }

    #[test]
    fn a_sealed_token_opens_and_any_change_breaks_it() {
        let key = SigningKey::ephemeral();
        let token = seal(&claims(), &key);
        assert_eq!(open(&token, &key.verifying_key()), Some(claims()));
        // Another key's token, an altered body, an altered signature, junk.
        let other = SigningKey::ephemeral();
        assert_eq!(open(&seal(&claims(), &other), &key.verifying_key()), None);
        let mut forged = claims();
        forged.fields.push(Field::Religion);
        let (_, sig) = token.split_once('.').unwrap();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(open(&format!("{body}.{sig}"), &key.verifying_key()), None);
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&String::from_utf8(bytes).unwrap(), &key.verifying_key()),
            None
        );
        assert_eq!(open("not a token", &key.verifying_key()), None);
        assert_eq!(open("", &key.verifying_key()), None);
    }

    proptest::proptest! {
        #[test]
        fn any_text_opens_to_nothing_but_a_sealed_token_opens(junk in ".{0,300}") {
            let key = SigningKey::ephemeral();
            proptest::prop_assert_eq!(open(&junk, &key.verifying_key()), None);
            let token = seal(&claims(), &key);
            proptest::prop_assert_eq!(open(&format!("{token}{junk}"), &key.verifying_key()).is_some(), junk.is_empty());
        }
    }
}
