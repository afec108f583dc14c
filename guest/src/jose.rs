//! JSON Web Signatures from outside (RFC 7515, compact form), verified here in the sandbox:
//! DPoP proofs (RFC 9449) and, with a client's registered keys, client assertions (RFC 7523).
//! The keys are public JWKs (RFC 7517) that a request or a registration carries, so nothing
//! here is trusted until its signature checks; what this service signs itself, the host
//! signs and verifies (`keys`).
//!
//! The verifiers are pure Rust and draw no randomness: ES256 (`p256`), EdDSA over Ed25519
//! (`ed25519-dalek`, strict: no small-order keys, no malleable signatures; named `EdDSA`, or
//! `Ed25519` as RFC 9864 names it and oauth4webapi sends it), RS256 and PS256 (`rsa`, 2048
//! to 8192 bits). `none` and every other algorithm are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The asymmetric algorithms verified, by their JWS names (RFC 7518, RFC 8037, RFC 9864).
pub const ASYMMETRIC: [&str; 5] = ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"];

/// A JWS longer than this is refused unread: a proof is a few hundred bytes, one with an
/// RSA key about 1.5 KiB.
const MAX_LEN: usize = 8 * 1024;

/// JWK members that only a private or secret key has (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithms of [`ASYMMETRIC`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Es256,
    EdDsa,
    Rs256,
    Ps256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Alg::Es256,
            "EdDSA" | "Ed25519" => Alg::EdDsa,
            "RS256" => Alg::Rs256,
            "PS256" => Alg::Ps256,
            _ => return None,
        })
    }
}

/// A compact JWS taken apart; its signature is not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `alg`, one of [`ASYMMETRIC`].
    pub alg: Alg,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// `token` taken apart: three base64url parts (no padding), a header and a payload that are
/// JSON objects, an `alg` of [`ASYMMETRIC`]. The error says which part is wrong.
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
        .ok_or("the JWS alg is not one of ES256, EdDSA (Ed25519), RS256, PS256")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "the JWS signature is not base64url")?;
    Ok(Jws {
        header,
        claims,
        alg,
        signing_input: &token[..token.rfind('.').expect("three parts")],
        signature,
    })
}

impl Jws<'_> {
    /// Whether `key` signed this JWS with its `alg` (which must suit the key's type).
    pub fn verified_by(&self, key: &PublicKey) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        let input = self.signing_input.as_bytes();
        match (self.alg, key) {
            (Alg::Es256, PublicKey::P256(key)) => {
                p256::ecdsa::Signature::from_slice(&self.signature)
                    .is_ok_and(|sig| key.verify(input, &sig).is_ok())
            }
            (Alg::EdDsa, PublicKey::Ed25519(key)) => {
                ed25519_dalek::Signature::from_slice(&self.signature)
                    .is_ok_and(|sig| key.verify_strict(input, &sig).is_ok())
            }
            (Alg::Rs256, PublicKey::Rsa(key)) => key
                .verify(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(input),
                    &self.signature,
                )
                .is_ok(),
            (Alg::Ps256, PublicKey::Rsa(key)) => key
                .verify(
                    rsa::Pss::new::<Sha256>(),
                    &Sha256::digest(input),
                    &self.signature,
                )
                .is_ok(),
            _ => false,
        }
    }

    /// The claim `name` as a string, if it is one.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// A public key of a JWK.
#[derive(Debug)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// The public key `jwk` describes: `EC` on `P-256`, `OKP` on `Ed25519`, or `RSA` of 2048 to
/// 8192 bits. A JWK with a private member (`d`, ...) or a symmetric one is refused: it was
/// never meant to be sent.
pub fn public_key(jwk: &Map<String, Value>) -> Result<PublicKey, &'static str> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("the JWK holds a private key");
    }
    let member = |name: &str| -> Result<Vec<u8>, &'static str> {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or("a JWK member is missing or not base64url")
    };
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    match (text("kty"), text("crv")) {
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (member("x")?, member("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 JWK's x and y are 32 bytes each");
            }
            let point = p256::EncodedPoint::from_affine_coordinates(
                x.as_slice().into(),
                y.as_slice().into(),
                false,
            );
            p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map(PublicKey::P256)
                .map_err(|_| "the JWK's point is not on P-256")
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x: [u8; 32] = member("x")?
                .try_into()
                .map_err(|_| "an Ed25519 JWK's x is 32 bytes")?;
            ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map(PublicKey::Ed25519)
                .map_err(|_| "the JWK is not an Ed25519 public key")
        }
        (Some("RSA"), _) => {
            let n = rsa::BigUint::from_bytes_be(&member("n")?);
            let e = rsa::BigUint::from_bytes_be(&member("e")?);
            if n.bits() < 2048 {
                return Err("an RSA JWK has at least 2048 bits");
            }
            rsa::RsaPublicKey::new_with_max_size(n, e, 8192)
                .map(PublicKey::Rsa)
                .map_err(|_| "the JWK is not a usable RSA public key")
        }
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
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_rfc_7638_example_thumbprint() {
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
    }

    #[test]
    fn the_rfc_8037_ed25519_example_verifies() {
        // RFC 8037 appendix A.4 (the key of A.2, the JWS of A.4).
        let jwk = map(json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }));
        let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        // Its payload is not JSON, so check the signature below the parser.
        let key = public_key(&jwk).unwrap();
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let parsed = Jws {
            header: Map::new(),
            claims: Map::new(),
            alg: Alg::EdDsa,
            signing_input: input,
            signature: URL_SAFE_NO_PAD.decode(sig).unwrap(),
        };
        assert!(parsed.verified_by(&key));
        let mut tampered = parsed;
        tampered.signature[0] ^= 1;
        assert!(!tampered.verified_by(&key));
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
            "RFC 8037 appendix A.3"
        );
    }

    #[test]
    fn the_rfc_7515_es256_example_verifies() {
        // RFC 7515 appendix A.3.
        let jwk = map(json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }));
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        let jws = parse(token).unwrap();
        assert_eq!((jws.alg, jws.claim_str("iss")), (Alg::Es256, Some("joe")));
        assert!(jws.verified_by(&public_key(&jwk).unwrap()));
        let other = map(
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        );
        assert!(
            !jws.verified_by(&public_key(&other).unwrap()),
            "the alg must suit the key"
        );
        let tampered = token.replacen(".DtEh", ".EtEh", 1);
        assert!(!parse(&tampered)
            .unwrap()
            .verified_by(&public_key(&jwk).unwrap()));
    }

    #[test]
    fn private_and_unknown_keys_are_refused() {
        let private = map(
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "x"}),
        );
        assert_eq!(
            public_key(&private).unwrap_err(),
            "the JWK holds a private key"
        );
        let secret = map(json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(public_key(&secret).is_err());
        let short_rsa = map(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        assert_eq!(
            public_key(&short_rsa).unwrap_err(),
            "an RSA JWK has at least 2048 bits"
        );
    }

    #[test]
    fn none_and_symmetric_algorithms_are_refused_unread() {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for alg in ["none", "HS256", "ES384"] {
            let token = format!("{}.{}.", part(json!({"alg": alg})), part(json!({})));
            assert_eq!(
                parse(&token).unwrap_err(),
                "the JWS alg is not one of ES256, EdDSA (Ed25519), RS256, PS256",
                "{alg}"
            );
        }
        assert!(parse("a.b").is_err());
        assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
