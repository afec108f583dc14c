//! Requests the unit tests send, and what they read of the answers: client credentials,
//! forms, and DPoP proofs (RFC 9449) signed by test keys.

use super::{TestHost, DEMO_ID, DEMO_SECRET};
use crate::{token, Request, Response};
use base64::Engine as _;

/// An `Authorization: Basic` header per RFC 6749 section 2.3.1 (plain ids only).
pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub fn post_auth<'a>(id: &'a str, secret: &'a str) -> [(&'a str, &'a str); 2] {
    [("client_id", id), ("client_secret", secret)]
}

pub fn form(params: &[(&str, &str)], authorization: Option<String>) -> Request {
    Request {
        params: params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        authorization,
        client_ip: "127.0.0.1".into(),
        dpop: None,
        url: TOKEN_URL.into(),
    }
}

/// The token endpoint's URL below the test host's issuer.
pub const TOKEN_URL: &str = "http://issuer.test/api/v1/oauth/token";

/// A DPoP key for tests: ES256, or EdDSA, from a fixed seed.
pub enum DpopKey {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

impl DpopKey {
    pub fn es256(seed: u8) -> Self {
        DpopKey::Es256(p256::ecdsa::SigningKey::from_slice(&[seed.max(1); 32]).unwrap())
    }
    pub fn eddsa(seed: u8) -> Self {
        DpopKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    /// The public JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        match self {
            DpopKey::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                serde_json::json!({"kty": "EC", "crv": "P-256",
                    "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
            }
            DpopKey::EdDsa(key) => serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "x": b64(key.verifying_key().as_bytes())}),
        }
    }

    /// Its RFC 7638 thumbprint.
    pub fn jkt(&self) -> String {
        let serde_json::Value::Object(jwk) = self.jwk() else {
            unreachable!()
        };
        crate::jose::thumbprint(&jwk).unwrap()
    }

    /// A JWS of `header` (to which `alg` and `jwk` are added unless it sets them) and
    /// `claims`, signed by this key.
    pub fn sign(&self, mut header: serde_json::Value, claims: serde_json::Value) -> String {
        use p256::ecdsa::signature::Signer as _;
        let alg = match self {
            DpopKey::Es256(_) => "ES256",
            DpopKey::EdDsa(_) => "EdDSA",
        };
        let fields = header.as_object_mut().unwrap();
        fields.entry("alg").or_insert(alg.into());
        fields.entry("jwk").or_insert(self.jwk());
        let b64 = |text: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match self {
            DpopKey::Es256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
                sig.to_bytes().to_vec()
            }
            DpopKey::EdDsa(key) => key.sign(input.as_bytes()).to_bytes().to_vec(),
        };
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// A proof for `method` at `url`, issued `iat` (Unix seconds), with id `jti`.
    pub fn proof(&self, method: &str, url: &str, iat: u64, jti: &str) -> String {
        self.sign(
            serde_json::json!({"typ": "dpop+jwt"}),
            serde_json::json!({"jti": jti, "htm": method, "htu": url, "iat": iat}),
        )
    }
}

pub fn body(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body).expect("JSON body")
}

/// Issues a token to the demo client and returns it.
pub fn issue(host: &TestHost, scope: &str) -> String {
    let response = token(
        host,
        &form(
            &[("grant_type", "client_credentials"), ("scope", scope)],
            Some(basic(DEMO_ID, DEMO_SECRET)),
        ),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    body(&response)["access_token"].as_str().unwrap().to_owned()
}

/// The userinfo endpoint's answer to a GET with `authorization`, or a POST with the form's
/// `access_token` too.
pub fn userinfo(
    host: &TestHost,
    authorization: Option<&String>,
    form_token: Option<&String>,
) -> Response {
    crate::userinfo::userinfo(
        host,
        &crate::userinfo::Presented {
            authorization: authorization.map(String::as_str),
            form_token: form_token.map(String::as_str),
            dpop: None,
            method: if form_token.is_some() { "POST" } else { "GET" },
            url: USERINFO_URL,
        },
    )
}

/// The userinfo endpoint's URL below the test host's issuer.
pub const USERINFO_URL: &str = "http://issuer.test/api/v1/oauth/userinfo";
