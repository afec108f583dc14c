//! Certificates made by openssl (`openssl req -x509`, see each), read back.

use super::*;

/// `-subj "/C=SE/O=Example, AB/OU=Payments+UID=42/CN=client one"` (P-256), with
/// `subjectAltName=DNS:client.example.com,URI:spiffe://example.com/client,IP:192.0.2.7,
/// IP:2001:db8::1,email:ops@example.com`. openssl prints its subject, RFC 2253:
/// `CN=client one,UID=42+OU=Payments,O=Example\, AB,C=SE`.
const FULL: &[u8] = include_bytes!("full.der");
/// `-subj "/CN=bare"` (Ed25519), no extensions.
const BARE: &[u8] = include_bytes!("bare.der");

fn dn(text: &str) -> Dn {
    parse_dn(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn the_subject_matches_its_rfc_4514_form_however_it_is_spaced_or_cased() {
    let names = names(FULL).expect("a certificate");
    for same in [
        r"CN=client one,UID=42+OU=Payments,O=Example\, AB,C=SE",
        r"cn=client one, OU=Payments+uid=42, O=Example\2C AB, C=SE",
        r"2.5.4.3=client one,UID=42+OU=Payments,O=Example\, AB,C=SE",
        r"CN=client one,UID=42+OU=Payments,O=#0c0b4578616d706c652c204142,C=SE",
    ] {
        assert!(names.subject_is(&dn(same)), "{same}");
    }
    for other in [
        r"CN=client one,OU=Payments,O=Example\, AB,C=SE",
        r"CN=Client One,UID=42+OU=Payments,O=Example\, AB,C=SE",
        r"C=SE,O=Example\, AB,UID=42+OU=Payments,CN=client one",
        r"CN=client one,UID=42+OU=Payments,O=Example\, AB",
        r"CN=client one,UID=42+OU=Payments,O=Example\, AB,C=SE,DC=example",
    ] {
        assert!(!names.subject_is(&dn(other)), "{other}");
    }
}

#[test]
fn subject_alternative_names_are_read_by_kind() {
    let names = names(FULL).expect("a certificate");
    assert_eq!(names.dns, ["client.example.com"]);
    assert_eq!(names.uris, ["spiffe://example.com/client"]);
    assert_eq!(names.emails, ["ops@example.com"]);
    let ips: Vec<IpAddr> = ["192.0.2.7", "2001:db8::1"]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
    assert_eq!(names.ips, ips);

    let bare = super::names(BARE).expect("a certificate");
    assert!(bare.subject_is(&dn("CN=bare")));
    assert!(bare.dns.is_empty() && bare.uris.is_empty() && bare.ips.is_empty());
}

#[test]
fn what_is_not_a_certificate_has_no_names() {
    for cut in [0, 1, 10, FULL.len() / 2, FULL.len() - 1] {
        assert_eq!(names(&FULL[..cut]), None, "cut at {cut}");
    }
    let mut long_length = FULL.to_vec();
    long_length[1] = 0x85;
    assert_eq!(names(&long_length), None);
    assert_eq!(names(b"not DER at all"), None);
}

#[test]
fn a_configured_dn_that_cannot_be_compared_says_why() {
    for (bad, why) in [
        ("CN", "type=value"),
        ("XX=1", "attribute type"),
        ("1=x", "attribute type"),
        ("O=#zz", "hex of a DER value"),
        (r"CN=a\", "lone"),
        (r"CN=\ff", "UTF-8"),
        ("", "empty"),
        ("  ", "empty"),
        ("CN=a,,O=b", "empty RDN"),
        ("2.99999999999999999999=x", "attribute type"),
        ("2.18446744073709551615=x", "attribute type"),
    ] {
        let e = parse_dn(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn trailing_spaces_go_unless_escaped_whatever_characters_end_the_value() {
    let value = |dn: &str| match parse_dn(dn).unwrap().0[0][0].value.clone() {
        Value::Text(text) => text,
        Value::Der(der) => panic!("{der:?}"),
    };
    assert_eq!(value("CN=a  "), "a");
    assert_eq!(value(r"CN=a\ "), "a ");
    assert_eq!(value(r"CN=a\  "), "a ");
    assert_eq!(value(r"CN=a\\ "), r"a\");
    // A multi-byte character next to the end is no place to cut (it once panicked).
    assert_eq!(value("CN=a\\\u{a0}"), "a\u{a0}");
    assert_eq!(value("CN=\u{e9}t\u{e9} "), "\u{e9}t\u{e9}");
}

#[test]
fn the_public_key_reads_as_the_jwk_another_reader_makes_of_it() {
    /// What Python's `cryptography` makes of each certificate's key.
    const RSA_CERT: &[u8] = include_bytes!("rsa.der");
    for (der, expected) in [
        (
            FULL,
            r#"{"kty": "EC", "crv": "P-256", "x": "rCq3EQmSvnMkQl9xITC5C2G58vZo9OUXziT-BtpNURY", "y": "spMszfr7UIq9KKIbv4aGDcX1gxmD86Lz5MApic_t_aY"}"#,
        ),
        (
            BARE,
            r#"{"kty": "OKP", "crv": "Ed25519", "x": "ykZz2k65Jcw7YryRz8A3yvtoxq60Jt-h7oKCtTAlj2w"}"#,
        ),
        (
            RSA_CERT,
            r#"{"kty": "RSA", "n": "uxURHdmODklD464tqg27VGSQgVWvjbZmlC5wKE5KAzGzbMJjLRha1WRLKh9yD8xybSVmOYgO2kCdtrf96_NiRLzIh7ZwDn__hnbDEdwl6MUcUwgqZDyOXD1Givyh_XHDFUeow3lP_0LgrYktLnM7HK1Icdtfk-4PZGoQ4eDnAh0oXrWtwQaPcn9o2glLS_YVCxXt6lzrjwfHxd8merkNfY8tVzSnEiXo9-i8_eAkgwLOoSdbb1RSpfGKeqBEsEotryxwLZa7c3S7pGwKrdNEZ2C_G0CZD2pqdOttRPk-VKNyzdlltHxKyMRujFyRYKAVHi2JNX5bocWIqAycaclcHw", "e": "AQAB"}"#,
        ),
    ] {
        let expected: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(expected).unwrap();
        assert_eq!(public_jwk(der), Some(expected));
    }
    assert_eq!(public_jwk(&FULL[..FULL.len() / 2]), None);
}
