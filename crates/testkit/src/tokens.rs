//! Token minting: blocking-function JWTs, Firebase ID tokens and Google OIDC tokens, signed
//! with the test keys, plus the unsigned and forged variants tests need.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::keys::TestKey;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// RS256 with `kid` = the key's id: what Google's signers produce.
pub fn sign(claims: &Value, key: &TestKey) -> String {
    let header = Header { kid: Some(key.kid.into()), ..Header::new(Algorithm::RS256) };
    sign_with(header, claims, key)
}

/// Signs with a chosen header (wrong `kid`, missing `kid`, another RSA algorithm, ...).
pub fn sign_with(header: Header, claims: &Value, key: &TestKey) -> String {
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).expect("signing with a test key")
}

/// `alg: none` with an empty signature, as the Firebase Auth emulator issues them.
pub fn unsigned(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The algorithm-confusion forgery: HS256 with the RSA public key (PEM bytes) as the secret.
pub fn hs256_with_public_key(claims: &Value, key: &TestKey) -> String {
    let header = Header { kid: Some(key.kid.into()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.public_pem().as_bytes()))
        .expect("HS256 signing")
}

/// Replaces one character of the signature part, keeping the token well-formed.
pub fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("a compact JWS");
    let mut sig: Vec<char> = sig.chars().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

/// Re-encodes the payload with `edit` applied, keeping the original header and signature.
pub fn tamper_payload(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    edit(&mut payload);
    format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(payload.to_string()))
}

/// Claims of an Identity Platform blocking request (the decoded `jwt` of `{"data":{"jwt":...}}`), for a password
/// sign-up of `uid` with email `<uid>@example.com` (verified false).
pub fn blocking_claims(project: &str, audience: &str, uid: &str, event_type: &str) -> Value {
    let iat = now();
    let now_ms = iat * 1000;
    json!({
        "iss": format!("https://securetoken.google.com/{project}"),
        "aud": audience,
        "iat": iat,
        "exp": iat + 3600,
        "sub": uid,
        "event_id": format!("evt-{}", uuid::Uuid::new_v4().simple()),
        "event_type": event_type,
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (testkit)",
        "locale": "en",
        "sign_in_method": "password",
        "user_record": {
            "uid": uid,
            "email": format!("{uid}@example.com"),
            "metadata": {"creation_time": now_ms, "last_sign_in_time": now_ms},
            "provider_data": [{
                "uid": format!("{uid}@example.com"),
                "email": format!("{uid}@example.com"),
                "provider_id": "password"
            }]
        }
    })
}

/// Claims of a Firebase ID token for `uid` in `project` (password provider, no custom claims).
pub fn firebase_id_claims(project: &str, uid: &str) -> Value {
    let iat = now();
    json!({
        "iss": format!("https://securetoken.google.com/{project}"),
        "aud": project,
        "auth_time": iat,
        "user_id": uid,
        "sub": uid,
        "iat": iat,
        "exp": iat + 3600,
        "email": format!("{uid}@example.com"),
        "email_verified": true,
        "firebase": {
            "identities": {"email": [format!("{uid}@example.com")]},
            "sign_in_provider": "password"
        }
    })
}

/// Claims of a Google-signed OIDC token as Pub/Sub push, Scheduler and Eventarc present them.
pub fn google_oidc_claims(audience: &str, email: &str) -> Value {
    let iat = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": email,
        "email_verified": true,
        "iat": iat,
        "exp": iat + 3600
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_tokens_have_alg_none_and_an_empty_signature() {
        let token = unsigned(&json!({"sub": "u"}));
        let raw = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
        assert!(token.ends_with('.'));
    }

    #[test]
    fn tampering_changes_the_token_but_keeps_its_shape() {
        let token = sign(&json!({"sub": "u", "exp": now() + 60}), crate::keys::primary());
        let forged = tamper_signature(&token);
        assert_ne!(forged, token);
        assert_eq!(forged.split('.').count(), 3);
        let edited = tamper_payload(&token, |p| p["sub"] = json!("admin"));
        assert_ne!(edited, token);
        assert_eq!(edited.rsplit('.').next(), token.rsplit('.').next());
    }
}
