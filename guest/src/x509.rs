//! What mutual TLS (RFC 8705) reads of a client's X.509 certificate: for `tls_client_auth`
//! its subject's distinguished name and its subject alternative names (section 2.1.2), for
//! `self_signed_tls_client_auth` its public key as a JWK, taken from the DER
//! (RFC 5280 section 4.1) by a small reader that trusts nothing of it. The host already
//! checked that the client holds the certificate's key (and whether it chains to the CA);
//! this only reads it.
//!
//! A configured subject DN is written as RFC 4514 says, most specific first
//! (`CN=client,O=Example,C=SE`); it is compared attribute by attribute with the
//! certificate's, the types by their OIDs, the values exactly once unescaped.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value as Json};
use std::net::IpAddr;

/// An attribute of a name: its type's OID (DER content bytes) and its value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Attribute {
    oid: Vec<u8>,
    value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A directory string (UTF8String, PrintableString, IA5String, ...), as text.
    Text(String),
    /// Any other value: its whole DER encoding (RFC 4514's `#` hex form).
    Der(Vec<u8>),
}

/// A relative distinguished name: its attributes, sorted (a set).
type Rdn = Vec<Attribute>;

/// The names a certificate carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The subject's RDNs, in the certificate's order (least specific first).
    subject: Vec<Rdn>,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// Whether the subject is `dn`, parsed by [`parse_dn`].
    pub fn subject_is(&self, dn: &Dn) -> bool {
        self.subject.len() == dn.0.len() && self.subject.iter().eq(dn.0.iter().rev())
    }
}

/// A distinguished name as configured (RFC 4514), its RDNs most specific first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn(Vec<Rdn>);

/// The short names RFC 4514 section 3 lists (and two RFC 4519 ones seen in client
/// certificates), with their OIDs' DER content bytes.
const SHORT_NAMES: [(&str, &[u8]); 11] = [
    ("CN", &[85, 4, 3]),
    ("L", &[85, 4, 7]),
    ("ST", &[85, 4, 8]),
    ("O", &[85, 4, 10]),
    ("OU", &[85, 4, 11]),
    ("C", &[85, 4, 6]),
    ("STREET", &[85, 4, 9]),
    ("DC", &[9, 146, 38, 137, 147, 242, 44, 100, 1, 25]),
    ("UID", &[9, 146, 38, 137, 147, 242, 44, 100, 1, 1]),
    ("SERIALNUMBER", &[85, 4, 5]),
    ("EMAILADDRESS", &[42, 134, 72, 134, 247, 13, 1, 9, 1]),
];

const SUBJECT_ALT_NAME: &[u8] = &[85, 29, 17];

/// A DER element: its tag byte and its content.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Reads the elements of a DER content one by one.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<Tlv<'a>> {
        let (&tag, rest) = self.0.split_first()?;
        // High tag numbers (0x1f) appear nowhere this reads.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                if rest.len() < n {
                    return None;
                }
                let (bytes, rest) = rest.split_at(n);
                let len = bytes
                    .iter()
                    .fold(0usize, |len, &b| (len << 8) | usize::from(b));
                (len, rest)
            }
            // Indefinite lengths are BER, not DER; longer ones fit nothing here.
            _ => return None,
        };
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some(Tlv { tag, content })
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next()
            .filter(|tlv| tlv.tag == tag)
            .map(|tlv| tlv.content)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;

/// The key algorithms of RFC 5480, RFC 8410 and RFC 3279 (DER content of their OIDs).
const EC_PUBLIC_KEY: &[u8] = &[42, 134, 72, 206, 61, 2, 1];
const P256: &[u8] = &[42, 134, 72, 206, 61, 3, 1, 7];
const ED25519: &[u8] = &[43, 101, 112];
const RSA: &[u8] = &[42, 134, 72, 134, 247, 13, 1, 1, 1];

/// What this reads of a certificate's `TBSCertificate` (RFC 5280 section 4.1): the subject,
/// the subject public key info, and the fields after it (the extensions).
struct Tbs<'a> {
    subject: &'a [u8],
    key: &'a [u8],
    rest: Reader<'a>,
}

fn tbs(der: &[u8]) -> Option<Tbs<'_>> {
    let certificate = Reader(der).expect(SEQUENCE)?;
    let mut tbs = Reader(Reader(certificate).expect(SEQUENCE)?);
    if tbs.next()?.tag == 0xa0 {
        // [0] version; then the serial number.
        tbs.next()?;
    }
    let _signature = tbs.expect(SEQUENCE)?;
    let _issuer = tbs.expect(SEQUENCE)?;
    let _validity = tbs.expect(SEQUENCE)?;
    let subject = tbs.expect(SEQUENCE)?;
    let key = tbs.expect(SEQUENCE)?;
    Some(Tbs {
        subject,
        key,
        rest: tbs,
    })
}

/// The subject and subject alternative names of the certificate `der`; none when it is not
/// one this reader can take apart.
pub fn names(der: &[u8]) -> Option<Names> {
    let Tbs {
        subject, mut rest, ..
    } = tbs(der)?;
    let mut names = Names {
        subject: name(subject)?,
        ..Names::default()
    };
    while let Some(field) = rest.next() {
        // [1] and [2] are the unique identifiers; [3] the extensions.
        if field.tag == 0xa3 {
            extensions(Reader(field.content).expect(SEQUENCE)?, &mut names)?;
        }
    }
    Some(names)
}

/// The public key of the certificate `der` as a JWK's public members (RFC 7518 section 6:
/// EC P-256, OKP Ed25519 by RFC 8037, or RSA), to compare with a registered key by its RFC
/// 7638 thumbprint; none for another kind of key, or what is not a certificate.
pub fn public_jwk(der: &[u8]) -> Option<Map<String, Json>> {
    let mut info = Reader(tbs(der)?.key);
    let mut algorithm = Reader(info.expect(SEQUENCE)?);
    let oid = algorithm.expect(OID)?;
    let key = info.expect(BIT_STRING)?.strip_prefix(&[0])?;
    let b64 = |bytes: &[u8]| Json::from(URL_SAFE_NO_PAD.encode(bytes));
    let members = match oid {
        EC_PUBLIC_KEY if algorithm.expect(OID)? == P256 => {
            let (x, y) = key
                .strip_prefix(&[4])
                .filter(|p| p.len() == 64)?
                .split_at(32);
            vec![
                ("kty", "EC".into()),
                ("crv", "P-256".into()),
                ("x", b64(x)),
                ("y", b64(y)),
            ]
        }
        ED25519 if key.len() == 32 => {
            vec![
                ("kty", "OKP".into()),
                ("crv", "Ed25519".into()),
                ("x", b64(key)),
            ]
        }
        RSA => {
            let mut numbers = Reader(Reader(key).expect(SEQUENCE)?);
            // Unsigned big-endian, without the sign byte DER puts before a high bit.
            let mut integer = || {
                let int = numbers.expect(INTEGER)?;
                Some(b64(&int[int.iter().position(|&b| b != 0)?..]))
            };
            let (n, e) = (integer()?, integer()?);
            vec![("kty", "RSA".into()), ("n", n), ("e", e)]
        }
        _ => return None,
    };
    Some(
        members
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

/// A Name: a sequence of RDNs, each a set of attribute type and value.
fn name(content: &[u8]) -> Option<Vec<Rdn>> {
    let mut rdns = Vec::new();
    let mut reader = Reader(content);
    while !reader.is_empty() {
        let mut set = Reader(reader.expect(SET)?);
        let mut rdn = Vec::new();
        while !set.is_empty() {
            let mut pair = Reader(set.expect(SEQUENCE)?);
            let oid = pair.expect(OID)?.to_vec();
            let value = pair.next()?;
            rdn.push(Attribute {
                oid,
                value: value_of(&value)?,
            });
        }
        rdn.sort();
        rdns.push(rdn);
    }
    Some(rdns)
}

/// An attribute's value: text for the string types, else its DER.
fn value_of(tlv: &Tlv) -> Option<Value> {
    let text = match tlv.tag {
        // UTF8String, PrintableString, IA5String, VisibleString.
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8(tlv.content.to_vec()).ok()?,
        // TeletexString, read as Latin-1 as most readers do.
        0x14 => tlv.content.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE.
        0x1e if tlv.content.len() % 2 == 0 => {
            let units = tlv
                .content
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()?
        }
        _ => {
            let mut der = vec![tlv.tag];
            der.extend(length(tlv.content.len()));
            der.extend_from_slice(tlv.content);
            return Some(Value::Der(der));
        }
    };
    Some(Value::Text(text))
}

/// A DER length.
fn length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// The subject alternative names among the extensions.
fn extensions(content: &[u8], names: &mut Names) -> Option<()> {
    let mut reader = Reader(content);
    while !reader.is_empty() {
        let mut extension = Reader(reader.expect(SEQUENCE)?);
        let oid = extension.expect(OID)?;
        let mut value = extension.next()?;
        if value.tag == 0x01 {
            // critical
            value = extension.next()?;
        }
        if value.tag != OCTET_STRING || oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut general_names = Reader(Reader(value.content).expect(SEQUENCE)?);
        while let Some(general_name) = general_names.next() {
            let text = || String::from_utf8(general_name.content.to_vec()).ok();
            match general_name.tag {
                0x81 => names.emails.push(text()?),
                0x82 => names.dns.push(text()?),
                0x86 => names.uris.push(text()?),
                0x87 => names.ips.push(match general_name.content.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(general_name.content).ok()?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(general_name.content).ok()?),
                    _ => return None,
                }),
                // otherName, x400Address, directoryName, ediPartyName, registeredID.
                _ => {}
            }
        }
    }
    Some(())
}

/// `text`, an RFC 4514 distinguished name, or why it is not one this compares: types are
/// short names (`CN`, `O`, `OU`, `C`, `L`, `ST`, `STREET`, `DC`, `UID`, `SERIALNUMBER`,
/// `EMAILADDRESS`, in any case) or dotted OIDs; values are text with `\` escapes, or `#`
/// and the hex of their DER. Spaces around `,`, `+` and `=` are let through.
pub fn parse_dn(text: &str) -> Result<Dn, String> {
    let mut rdns = Vec::new();
    for rdn in split_unescaped(text, ',') {
        let mut attributes = Vec::new();
        let parts = split_unescaped(rdn, '+');
        if parts.is_empty() {
            return Err(format!("{text:?} has an empty RDN"));
        }
        for attribute in parts {
            let (kind, value) = attribute
                .split_once('=')
                .ok_or_else(|| format!("{attribute:?} is not type=value"))?;
            let oid = oid_of(kind.trim())?;
            let value = value.trim_start();
            let value = match value.strip_prefix('#') {
                // The DER of a value: read as a certificate's would be.
                Some(hex) => from_hex(hex.trim_end())
                    .and_then(|der| {
                        let mut reader = Reader(&der);
                        let tlv = reader.next().filter(|_| reader.is_empty())?;
                        value_of(&tlv)
                    })
                    .ok_or_else(|| {
                        format!("{value:?}: what follows # is not the hex of a DER value")
                    })?,
                None => Value::Text(unescape(value)?),
            };
            attributes.push(Attribute { oid, value });
        }
        attributes.sort();
        rdns.push(attributes);
    }
    if rdns.is_empty() {
        return Err("the DN is empty: it would match a certificate without a subject".into());
    }
    Ok(Dn(rdns))
}

/// `text` split at each `separator` that no `\` escapes; empty when `text` is.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == separator => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The OID of an attribute type: a short name or a dotted OID.
fn oid_of(kind: &str) -> Result<Vec<u8>, String> {
    if let Some((_, oid)) = SHORT_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(kind))
    {
        return Ok(oid.to_vec());
    }
    let unknown = || {
        format!("{kind:?} is not an attribute type this reads (CN, O, OU, C, L, ST, STREET, DC, UID, SERIALNUMBER, EMAILADDRESS or a dotted OID)")
    };
    let arcs: Vec<u64> = kind
        .split('.')
        .map(|arc| arc.parse().map_err(|_| unknown()))
        .collect::<Result<_, _>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return Err(unknown());
    }
    let first = arcs[0]
        .checked_mul(40)
        .and_then(|a| a.checked_add(arcs[1]))
        .ok_or_else(unknown)?;
    let mut der = Vec::new();
    for arc in std::iter::once(first).chain(arcs[2..].iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        der.extend(groups.into_iter().rev());
    }
    Ok(der)
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// An RFC 4514 value unescaped: `\` before a special character or two hex digits (a
/// UTF-8 byte); trailing spaces not escaped are dropped.
fn unescape(value: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(value.len());
    // The bytes up to the last one that is not an unescaped space.
    let mut kept = 0;
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            bytes.push(b);
            if b != b' ' {
                kept = bytes.len();
            }
            continue;
        }
        match rest {
            [h, l, tail @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let digit = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
                bytes.push(digit(*h) << 4 | digit(*l));
                rest = tail;
            }
            [c, tail @ ..] => {
                bytes.push(*c);
                rest = tail;
            }
            [] => return Err(format!("{value:?} ends with a lone \\")),
        }
        kept = bytes.len();
    }
    bytes.truncate(kept);
    String::from_utf8(bytes).map_err(|_| format!("{value:?} is not UTF-8 once unescaped"))
}

#[cfg(test)]
mod tests;
