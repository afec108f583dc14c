//! JSON Web Signatures from outside (RFC 7515, compact form): DPoP proofs (RFC 9449) and
//! client assertions (RFC 7523). The keys are public JWKs (RFC 7517) that a request or a
//! registration carries, so nothing here is trusted until its signature checks; what this
//! service signs itself, the host signs and verifies (`keys.sign`, `keys.verify`).
//!
//! The guest takes a JWS apart, picks the key, and judges the claims; the host checks the
//! signature natively (`keys.verify-with-key`): ES256, EdDSA (named `EdDSA`, or `Ed25519` as
//! RFC 9864 names it and oauth4webapi sends it), RS256 and PS256. Pure-Rust verifiers
//! compiled into the guest took about 2 ms an ES256 signature inside the sandbox, 25 times
//! a whole token request (docs/benchmarks.md, "Keys from outside"). A client assertion may
//! also be HS256 (`client_secret_jwt`), which the host verifies under the client's secret
//! (`keys.verify-client-secret-jwt`): the guest never holds it. `none` and every other
//! algorithm are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Host;
use tokenginx_syntax::registration::PRIVATE_JWK_MEMBERS;

/// The asymmetric algorithms verified, by their JWS names (RFC 7518, RFC 8037, RFC 9864).
pub const ASYMMETRIC: [&str; 5] = ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"];
/// What a client assertion may be signed with: those, and HS256.
pub const CLIENT_ASSERTION: [&str; 6] = ["ES256", "EdDSA", "Ed25519", "RS256", "PS256", "HS256"];

/// A JWS longer than this is refused unread: a proof is a few hundred bytes, one with an
/// RSA key about 1.5 KiB.
const MAX_LEN: usize = 8 * 1024;

/// The algorithms of [`CLIENT_ASSERTION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Es256,
    EdDsa,
    Rs256,
    Ps256,
    /// Symmetric: verified by the host, under a client's secret.
    Hs256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Alg::Es256,
            "EdDSA" | "Ed25519" => Alg::EdDsa,
            "RS256" => Alg::Rs256,
            "PS256" => Alg::Ps256,
            "HS256" => Alg::Hs256,
            _ => return None,
        })
    }
}

/// A compact JWS taken apart; its signature is not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `alg`, one of [`CLIENT_ASSERTION`].
    pub alg: Alg,
    /// The JWS itself, for the host to verify.
    token: &'a str,
}

/// `token` taken apart: three base64url parts (no padding), a header and a payload that are
/// JSON objects, an `alg` of [`CLIENT_ASSERTION`]. The error says which part is wrong.
pub fn parse(token: &str) -> Result<Jws<'_>, &'static str> {
    if token.len() > MAX_LEN {
        return Err("the JWS is too long");
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three base64url parts)");
    };
    let object = |part: &str| -> Option<Map<String, Value>> {
        match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let header = object(header).ok_or("the JWS header is not a base64url JSON object")?;
    let claims = object(payload).ok_or("the JWS payload is not a base64url JSON object")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .ok_or("the JWS alg is not one of ES256, EdDSA (Ed25519), RS256, PS256, HS256")?;
    if URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err("the JWS signature is not base64url");
    }
    Ok(Jws {
        header,
        claims,
        alg,
        token,
    })
}

impl Jws<'_> {
    /// Whether the public key `jwk` signed this JWS with its `alg`, as the host finds
    /// (never HS256: that is a client secret's, `keys.verify-client-secret-jwt`).
    pub fn verified_by(&self, host: &impl Host, jwk: &Map<String, Value>) -> bool {
        self.alg != Alg::Hs256
            && public_jwk(jwk).is_ok()
            && host.verify_with_key(&Value::Object(jwk.clone()).to_string(), self.token)
    }

    /// The claim `name` as a string, if it is one.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Whether a key of the JWK set `jwks` (JSON) signed this JWS: one named by the header's
    /// `kid` if it has one, meant for signatures (no `use` but `sig`), of the `alg` it names
    /// if any.
    pub fn verified_by_one_of(&self, host: &impl Host, jwks: &str) -> bool {
        let Ok(set) = serde_json::from_str::<Value>(jwks) else {
            return false;
        };
        let kid = self.header.get("kid").and_then(Value::as_str);
        let alg = self.header.get("alg").and_then(Value::as_str);
        let keys = set.get("keys").and_then(Value::as_array);
        keys.into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .any(|jwk| {
                let member = |name: &str| jwk.get(name).and_then(Value::as_str);
                kid.is_none_or(|kid| member("kid") == Some(kid))
                    && member("use").is_none_or(|u| u == "sig")
                    && member("alg").is_none_or(|a| Some(a) == alg)
                    && self.verified_by(host, jwk)
            })
    }
}

/// Whether `jwk` describes a public key of a kind the host verifies with: `EC` on `P-256`
/// (x and y of 32 bytes), `OKP` on `Ed25519` (x of 32 bytes), or `RSA` of 2048 to 8192 bits.
/// A JWK with a private member (`d`, ...) or a symmetric one is refused: it was never meant
/// to be sent. Whether an EC point is on the curve, the host finds when it verifies.
pub fn public_jwk(jwk: &Map<String, Value>) -> Result<(), &'static str> {
    if PRIVATE_JWK_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("the JWK holds a private key");
    }
    let bytes = |name: &str| -> Result<usize, &'static str> {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .map(|v| v.len() - v.iter().take_while(|b| **b == 0).count())
            .ok_or("a JWK member is missing or not base64url")
    };
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    match (text("kty"), text("crv")) {
        (Some("EC"), Some("P-256")) if bytes("x")? <= 32 && bytes("y")? <= 32 => Ok(()),
        (Some("EC"), Some("P-256")) => Err("a P-256 JWK's x and y are 32 bytes each"),
        (Some("OKP"), Some("Ed25519")) if bytes("x")? <= 32 => Ok(()),
        (Some("OKP"), Some("Ed25519")) => Err("an Ed25519 JWK's x is 32 bytes"),
        (Some("RSA"), _) if !(256..=1024).contains(&bytes("n")?) => {
            Err("an RSA JWK has 2048 to 8192 bits")
        }
        (Some("RSA"), _) if bytes("e")? == 0 => Err("an RSA JWK has an exponent"),
        (Some("RSA"), _) => Ok(()),
        _ => Err("the JWK is not an EC P-256, OKP Ed25519 or RSA key"),
    }
}

/// The JWK SHA-256 thumbprint of a public key (RFC 7638), base64url: the digest of its
/// required members in lexicographic order, without whitespace. It names the key in
/// `cnf.jkt` (RFC 9449 section 6).
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, &'static str> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        _ => return Err("the JWK has no thumbprint: unknown kty"),
    };
    let mut canonical = Map::new();
    for &name in members {
        let value = jwk
            .get(name)
            .filter(|v| v.is_string())
            .ok_or("a JWK member is missing")?;
        canonical.insert(name.to_owned(), value.clone());
    }
    // serde_json's map keeps keys sorted, and `to_string` writes no whitespace.
    let json = Value::Object(canonical).to_string();
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

/// base64url(SHA-256(`text`)): DPoP's `ath` (section 4.2).
pub fn sha256_b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestHost;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn the_rfc_7638_and_rfc_8037_example_thumbprints() {
        // RFC 7638 section 3.1.
        let jwk = map(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(public_jwk(&jwk), Ok(()));
        // RFC 8037 appendix A.3.
        let okp = map(json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X}));
        assert_eq!(
            thumbprint(&okp).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn the_rfc_7515_es256_example_verifies_by_its_key_and_no_other() {
        // RFC 7515 appendix A.3.
        let jwk = map(json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }));
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        let host = TestHost::new();
        let jws = parse(token).unwrap();
        assert_eq!((jws.alg, jws.claim_str("iss")), (Alg::Es256, Some("joe")));
        assert!(jws.verified_by(&host, &jwk));
        let other = map(json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X}));
        assert!(!jws.verified_by(&host, &other), "the alg must suit the key");
        let tampered = token.replacen(".DtEh", ".EtEh", 1);
        assert!(!parse(&tampered).unwrap().verified_by(&host, &jwk));
        let set = json!({"keys": [other, jwk]}).to_string();
        assert!(jws.verified_by_one_of(&host, &set));
    }

    #[test]
    fn private_and_unknown_keys_are_refused() {
        let private = map(json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "d": "x"}));
        assert_eq!(
            public_jwk(&private).unwrap_err(),
            "the JWK holds a private key"
        );
        let secret = map(json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(public_jwk(&secret).is_err());
        let short_rsa = map(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        assert_eq!(
            public_jwk(&short_rsa).unwrap_err(),
            "an RSA JWK has 2048 to 8192 bits"
        );
        let long_x =
            map(json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([1u8; 33])}));
        assert!(public_jwk(&long_x).is_err());
    }

    #[test]
    fn none_and_other_algorithms_are_refused_unread_and_hs256_verifies_by_no_key() {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "HS512", "ES384"] {
            let token = format!("{}.{}.", part(json!({"alg": alg})), part(json!({})));
            assert_eq!(
                parse(&token).unwrap_err(),
                "the JWS alg is not one of ES256, EdDSA (Ed25519), RS256, PS256, HS256",
                "{alg}"
            );
        }
        let hs256 = format!("{}.{}.AAAA", part(json!({"alg": "HS256"})), part(json!({})));
        let jws = parse(&hs256).unwrap();
        let key = map(json!({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X}));
        assert!(!jws.verified_by(&TestHost::new(), &key));
        assert!(parse("a.b").is_err());
        assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
