//! Signatures by keys from outside (`keys.verify-with-key`): a DPoP proof's own key (RFC
//! 9449), a client's registered ones (`private_key_jwt`, RFC 7523); and a client's
//! `client_secret_jwt` under its secret (`keys.verify-client-secret-jwt`). The guest finds the key
//! and judges the claims; the host does the arithmetic natively, with ring, where the
//! guest's pure-Rust verifiers took about 2 ms an ES256 signature inside the sandbox
//! (docs/benchmarks.md, "Keys from outside").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};
use serde_json::Value;

/// Whether the compact JWS `token` is signed by the public key `jwk` (a JWK as JSON) under
/// the `alg` its header names: ES256 with an EC P-256 key, EdDSA (or RFC 9864's Ed25519)
/// with an OKP Ed25519 key, RS256 or PS256 with an RSA key of 2048 to 8192 bits. Anything
/// else, a key with a private member included, is false.
pub fn verify(jwk: &str, token: &str) -> bool {
    verified(jwk, token).unwrap_or(false)
}

/// Whether `token` is a compact JWS with `alg: HS256` whose MAC under `key` checks (compared
/// in constant time by ring): a client's `client_secret_jwt` assertion (RFC 7523).
pub fn verify_hs256(key: &ring::hmac::Key, token: &str) -> bool {
    parts(token).is_some_and(|(input, alg, mac)| {
        alg == "HS256" && ring::hmac::verify(key, input.as_bytes(), &mac).is_ok()
    })
}

/// A compact JWS taken apart: the signing input, the header's `alg`, the signature.
fn parts(token: &str) -> Option<(&str, String, Vec<u8>)> {
    let (input, signature) = token.rsplit_once('.')?;
    let (header, _payload) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let alg = header.get("alg")?.as_str()?.to_owned();
    Some((input, alg, URL_SAFE_NO_PAD.decode(signature).ok()?))
}

fn verified(jwk: &str, token: &str) -> Option<bool> {
    let jwk: Value = serde_json::from_str(jwk).ok()?;
    let jwk = jwk.as_object()?;
    let private = tokenginx_syntax::registration::PRIVATE_JWK_MEMBERS;
    if private.iter().any(|m| jwk.contains_key(*m)) {
        return None;
    }
    let (input, alg, signature) = parts(token)?;
    let member =
        |name: &str| -> Option<Vec<u8>> { URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok() };
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let message = input.as_bytes();
    let ok = match (alg.as_str(), text("kty")?, text("crv")) {
        ("ES256", "EC", Some("P-256")) => {
            let point = [&[4u8][..], &member("x")?, &member("y")?].concat();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, &signature)
        }
        ("EdDSA" | "Ed25519", "OKP", Some("Ed25519")) => {
            UnparsedPublicKey::new(&ED25519, member("x")?).verify(message, &signature)
        }
        (alg @ ("RS256" | "PS256"), "RSA", _) => {
            let key = RsaPublicKeyComponents {
                n: member("n")?,
                e: member("e")?,
            };
            let params = match alg {
                "RS256" => &RSA_PKCS1_2048_8192_SHA256,
                _ => &RSA_PSS_2048_8192_SHA256,
            };
            key.verify(params, message, &signature)
        }
        _ => return None,
    };
    Some(ok.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7515_es256_and_rfc_8037_ed25519_examples_verify() {
        // RFC 7515 appendix A.3.
        let ec = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let es256 = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        assert!(verify(ec, es256));
        assert!(!verify(ec, &es256.replacen(".DtEh", ".EtEh", 1)));
        // RFC 8037 appendices A.2 and A.4.
        let okp =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let eddsa = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        assert!(verify(okp, eddsa));
        // The algorithm must suit the key; a private member makes the key unusable.
        assert!(!verify(okp, es256));
        assert!(!verify(ec, eddsa));
        let private = okp.replace("\"x\"", "\"d\":\"AA\",\"x\"");
        assert!(!verify(&private, eddsa));
        assert!(!verify(okp, "not a jws"));
    }

    #[test]
    fn rs256_and_ps256_verify_with_the_rsa_public_key() {
        use ring::rand::SystemRandom;
        use ring::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
        let pkcs8 = super::super::sign::generate(crate::contract::keys::Algorithm::Rs256);
        let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
        let public = pair.public_key();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let components: RsaPublicKeyComponents<Vec<u8>> = public.into();
        let (n, e) = (b64(&components.n), b64(&components.e));
        let jwk = format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#);
        for (alg, padding) in [
            (
                "RS256",
                &RSA_PKCS1_SHA256 as &dyn ring::signature::RsaEncoding,
            ),
            ("PS256", &RSA_PSS_SHA256),
        ] {
            let input = format!(
                "{}.{}",
                b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
                b64(b"{}")
            );
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(
                padding,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
            let token = format!("{input}.{}", b64(&signature));
            assert!(verify(&jwk, &token), "{alg}");
            let other = if alg == "RS256" { "PS256" } else { "RS256" };
            let relabelled = token.replacen(
                &b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
                &b64(format!(r#"{{"alg":"{other}"}}"#).as_bytes()),
                1,
            );
            assert!(!verify(&jwk, &relabelled), "{alg} under another padding");
        }
    }
}
