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
        client_cert: None,
        certificate: Default::default(),
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
        // `"jwk": null` leaves it out (a client assertion names no key).
        if fields.entry("jwk").or_insert(self.jwk()).is_null() {
            fields.remove("jwk");
        }
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

/// An error answer's status and `error`.
pub fn refusal(response: &Response) -> (u16, String) {
    let error = body(response)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (response.status, error)
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
            client_cert: None,
        },
    )
}

/// The userinfo endpoint's URL below the test host's issuer.
pub const USERINFO_URL: &str = "http://issuer.test/api/v1/oauth/userinfo";

/// A JWS of `claims` with HS256 under `secret` (a `client_secret_jwt` assertion).
pub fn hs256(secret: &str, claims: serde_json::Value) -> String {
    use hmac::Mac as _;
    let b64 = |text: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

/// What the host's `keys.verify-with-key` answers, natively with pure-Rust verifiers: ES256
/// and EdDSA (the tests sign no RSA).
pub fn verify_with_key(jwk: &str, token: &str) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let Ok(jwk) = serde_json::from_str::<serde_json::Value>(jwk) else {
        return false;
    };
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let header = input.split('.').next().unwrap_or_default();
    let header: serde_json::Value =
        serde_json::from_slice(&b64(&header.into())).unwrap_or_default();
    let signature = b64(&signature.into());
    match (header["alg"].as_str(), jwk["kty"].as_str()) {
        (Some("ES256"), Some("EC")) => {
            let (x, y) = (b64(&jwk["x"]), b64(&jwk["y"]));
            if x.len() != 32 || y.len() != 32 {
                return false;
            }
            let point = p256::EncodedPoint::from_affine_coordinates(
                x.as_slice().into(),
                y.as_slice().into(),
                false,
            );
            let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point);
            let sig = p256::ecdsa::Signature::from_slice(&signature);
            matches!((key, sig), (Ok(key), Ok(sig)) if key.verify(input.as_bytes(), &sig).is_ok())
        }
        (Some("EdDSA" | "Ed25519"), Some("OKP")) => {
            let key = <[u8; 32]>::try_from(b64(&jwk["x"]))
                .ok()
                .and_then(|x| ed25519_dalek::VerifyingKey::from_bytes(&x).ok());
            let sig = ed25519_dalek::Signature::from_slice(&signature);
            matches!((key, sig), (Some(key), Ok(sig)) if key.verify_strict(input.as_bytes(), &sig).is_ok())
        }
        _ => false,
    }
}
