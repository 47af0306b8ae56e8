//! Fixed RSA-2048 test keys (committed, test-only) and their public JWK forms.

use std::sync::LazyLock;

use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};

/// One RSA key pair with its key id.
#[derive(Debug)]
pub struct TestKey {
    /// The `kid` tokens signed with this key carry.
    pub kid: &'static str,
    private_pem: &'static str,
    public_pem: &'static str,
    modulus_b64url: &'static str,
}

impl TestKey {
    /// The signing key.
    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).expect("test key PEM is valid")
    }

    /// The verification key.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_pem(self.public_pem.as_bytes()).expect("test public PEM is valid")
    }

    /// The SubjectPublicKeyInfo PEM of the public key.
    pub fn public_pem(&self) -> &'static str {
        self.public_pem
    }

    /// The public key as a JWK, as Google's JWK endpoints publish them.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": self.modulus_b64url,
            "e": "AQAB",
        })
    }
}

static PRIMARY: LazyLock<TestKey> = LazyLock::new(|| TestKey {
    kid: "testkit-primary",
    private_pem: include_str!("../keys/primary.pem"),
    public_pem: include_str!("../keys/primary.pub.pem"),
    modulus_b64url: include_str!("../keys/primary.n").trim_ascii(),
});

static OTHER: LazyLock<TestKey> = LazyLock::new(|| TestKey {
    kid: "testkit-other",
    private_pem: include_str!("../keys/other.pem"),
    public_pem: include_str!("../keys/other.pub.pem"),
    modulus_b64url: include_str!("../keys/other.n").trim_ascii(),
});

/// The key the local JWKS server publishes by default.
pub fn primary() -> &'static TestKey {
    &PRIMARY
}

/// A second key: published for rotation tests, or left unpublished to forge signatures.
pub fn other() -> &'static TestKey {
    &OTHER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_verify_with_their_own_public_half_only() {
        let claims = json!({"sub": "u1", "exp": 4_102_444_800_u64});
        let header = jsonwebtoken::Header {
            kid: Some(primary().kid.into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
        };
        let token = jsonwebtoken::encode(&header, &claims, &primary().encoding_key()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        assert!(
            jsonwebtoken::decode::<Value>(&token, &primary().decoding_key(), &validation).is_ok()
        );
        assert!(
            jsonwebtoken::decode::<Value>(&token, &other().decoding_key(), &validation).is_err()
        );
        let from_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(primary().jwk()).unwrap();
        let key = DecodingKey::from_jwk(&from_jwk).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());
    }
}
