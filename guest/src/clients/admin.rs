//! Ory Hydra v2's client admin API, on the admin listener: `POST` and `GET /admin/clients`,
//! `GET`, `PUT`, `PATCH` (RFC 6902) and `DELETE /admin/clients/{id}`, with Hydra's
//! `OAuth2Client` JSON and its errors, so Ory's SDKs and CLI work against it unchanged.
//!
//! A client is checked by the same rules as a configured one (`client_rules`), plus what
//! a registration at runtime adds: a secret the operator chooses has at least 32
//! characters; a generated one has 256 bits and is shown once, in the answer that set it.
//! The configured clients are listed and shown, never changed here.

use super::build::build;
use super::record::Stored;
pub use super::show::rfc3339;
use super::show::{show, show_configured};
use super::{index_key, index_key_of, record_key, MAX_ID_BYTES, RECORD_TTL_MS};
use crate::response::json;
use crate::{Change, Host, Response, StoreError, Transaction};
use base64::Engine as _;
use serde_json::{json as value, Map, Value};

/// Hydra's page size (v25 on): 100 unless asked, at most 500.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;
/// A bucket's index stays below this many bytes of JSON (the store's values are at most
/// 64 KiB): about 1,500 ids of 36 characters, 24,000 clients in all.
const MAX_INDEX_BYTES: usize = 60 * 1024;
/// How often a write retries when another write changed the bucket meanwhile.
const ATTEMPTS: usize = 8;

/// Hydra's `error` of a 404 and a 409 (its store's messages).
const NOT_FOUND: &str = "Unable to locate the resource";
const CONFLICT: &str =
    "Unable to insert or update resource because a resource with that value exists already";

/// An answer other than success: Hydra's `{error, error_description}` (and the status, as
/// `status_code`, which Ory's SDKs read too).
pub struct ApiError(pub u16, pub &'static str, pub String);

impl ApiError {
    pub(super) fn metadata(why: impl Into<String>) -> Self {
        ApiError(400, "invalid_client_metadata", why.into())
    }
    fn not_found(id: &str) -> Self {
        ApiError(404, NOT_FOUND, format!("no client has the id {id:?}"))
    }
    pub(super) fn store(host: &impl Host, error: StoreError) -> Self {
        let e = crate::response::store_failure(host, error);
        ApiError(e.status, e.error, e.description)
    }
    pub fn into_response(self) -> Response {
        let ApiError(status, error, description) = self;
        json(
            status,
            &value!({"error": error, "error_description": description, "status_code": status}),
        )
    }
}

/// Answers a call to `/admin/clients` (`id` none) or `/admin/clients/{id}`.
pub fn handle(
    host: &impl Host,
    method: &str,
    id: Option<&str>,
    query: &[(String, String)],
    body: Option<&str>,
) -> Response {
    let result = match (method, id) {
        ("POST", None) => create(host, body),
        ("GET" | "HEAD", None) => list(host, query),
        ("GET" | "HEAD", Some(id)) => show_one(host, id),
        ("PUT", Some(id)) => replace(host, id, body),
        ("PATCH", Some(id)) => patch(host, id, body),
        ("DELETE", Some(id)) => delete(host, id),
        _ => Err(ApiError(
            405,
            "method_not_allowed",
            "not on this path".into(),
        )),
    };
    result.unwrap_or_else(ApiError::into_response)
}

fn object(body: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    match body.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(fields))) => Ok(fields),
        _ => Err(ApiError(
            400,
            "invalid_request",
            "the body must be a JSON object (Hydra's OAuth2Client)".into(),
        )),
    }
}

fn create(host: &impl Host, body: Option<&str>) -> Result<Response, ApiError> {
    let fields = object(body)?;
    let id = match fields.get("client_id") {
        None | Some(Value::Null) => new_id(host),
        Some(Value::String(id)) if id.is_empty() => new_id(host),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(ApiError::metadata("client_id must be a string")),
    };
    check_id(&id)?;
    if host.client(&id).is_some() {
        return Err(taken(&id));
    }
    let now = host.now_ms() / 1000;
    let (stored, secret) = build(host, &fields, &id, None, now)?;
    match insert(host, &stored, usize::MAX).map_err(|e| ApiError::store(host, e))? {
        Inserted::Yes => {}
        Inserted::Taken => return Err(taken(&id)),
        Inserted::Full => {
            return Err(ApiError(
                507,
                "insufficient_storage",
                format!("the index of {id:?}'s bucket is full ({MAX_INDEX_BYTES} bytes)"),
            ))
        }
    }
    let mut response = json(201, &show(&stored, secret.as_deref(), host));
    let location = format!("/admin/clients/{}", crate::params::percent_encode(&id));
    response.headers.push(("Location".into(), location));
    Ok(response)
}

fn taken(id: &str) -> ApiError {
    ApiError(409, CONFLICT, format!("a client with the id {id:?} exists"))
}

/// A client id as Hydra makes one: a random UUID (version 4).
pub(super) fn new_id(host: &impl Host) -> String {
    let mut b = host.random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ApiError::metadata(format!(
            "client_id must be at most {MAX_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

pub(super) fn read(host: &impl Host, id: &str) -> Result<Option<(Stored, Vec<u8>)>, ApiError> {
    super::read(host, id).map_err(|e| ApiError::store(host, e))
}

/// Client `id` as Hydra shows it (configured or registered here), if there is one.
pub fn shown(host: &impl Host, id: &str) -> Option<Value> {
    match host.client(id) {
        Some(client) => Some(show_configured(host, &client)),
        None => read(host, id)
            .ok()
            .flatten()
            .map(|(stored, _)| show(&stored, None, host)),
    }
}

fn show_one(host: &impl Host, id: &str) -> Result<Response, ApiError> {
    if let Some(client) = host.client(id) {
        return Ok(json(200, &show_configured(host, &client)));
    }
    let (stored, _) = read(host, id)?.ok_or_else(|| ApiError::not_found(id))?;
    Ok(json(200, &show(&stored, None, host)))
}

fn configured(id: &str) -> ApiError {
    ApiError(
        403,
        "forbidden",
        format!(
            "client {id:?} is configured in the service's configuration file (oauth.clients): \
             change or remove it there"
        ),
    )
}

fn replace(host: &impl Host, id: &str, body: Option<&str>) -> Result<Response, ApiError> {
    let fields = object(body)?;
    update(host, id, |_| Ok(fields))
}

fn patch(host: &impl Host, id: &str, body: Option<&str>) -> Result<Response, ApiError> {
    let ops: Value = body
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| {
            ApiError(
                400,
                "invalid_request",
                "the body must be a JSON Patch".into(),
            )
        })?;
    update(host, id, |current| {
        match super::patch::apply(current, &ops) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(ApiError::metadata(
                "the patched client is not a JSON object",
            )),
            Err(why) => Err(ApiError(
                400,
                "invalid_request",
                format!("JSON Patch: {why}"),
            )),
        }
    })
}

/// Replaces client `id` by what `edit` makes of its JSON, if it was not changed meanwhile.
fn update(
    host: &impl Host,
    id: &str,
    edit: impl FnOnce(Value) -> Result<Map<String, Value>, ApiError>,
) -> Result<Response, ApiError> {
    if host.client(id).is_some() {
        return Err(configured(id));
    }
    let (previous, bytes) = read(host, id)?.ok_or_else(|| ApiError::not_found(id))?;
    let current = show(&previous, None, host);
    let mut fields = edit(current.clone())?;
    // The strategy shown of a client that inherits it stays inherited unless changed.
    let strategy = "access_token_strategy";
    if previous.access_token_strategy.is_none() && fields.get(strategy) == current.get(strategy) {
        fields.remove(strategy);
    }
    let now = host.now_ms() / 1000;
    let (stored, secret) = build(host, &fields, id, Some(&previous), now)?;
    write_over(host, bytes, &stored)?;
    Ok(json(200, &show(&stored, secret.as_deref(), host)))
}

/// Writes `stored` over the record that was `previous`, unless it changed meanwhile (409).
pub(super) fn write_over(
    host: &impl Host,
    previous: Vec<u8>,
    stored: &Stored,
) -> Result<(), ApiError> {
    let id = &stored.client_id;
    let value = serde_json::to_vec(stored).expect("a client serializes");
    let tx = Transaction {
        expect: vec![(record_key(id), Some(previous))],
        changes: vec![Change {
            key: record_key(id),
            value: Some(value.clone()),
            ttl_ms: RECORD_TTL_MS,
        }],
    };
    let applied = host.store_apply(tx).map_err(|e| ApiError::store(host, e))?;
    // False may follow a retried first attempt that landed: then the record is ours.
    let landed = applied || read(host, id)?.is_some_and(|(_, now)| now == value);
    match landed {
        true => Ok(()),
        false => Err(ApiError(
            409,
            "conflict",
            "the client changed while this request changed it: read it and try again".into(),
        )),
    }
}

pub(super) fn delete(host: &impl Host, id: &str) -> Result<Response, ApiError> {
    if host.client(id).is_some() {
        return Err(configured(id));
    }
    let deleted = Response {
        status: 204,
        headers: Vec::new(),
        body: String::new(),
    };
    for attempt in 0..ATTEMPTS {
        let keys = [record_key(id), index_key(id)];
        let found = host
            .store_get_many(&keys)
            .map_err(|e| ApiError::store(host, e))?;
        let [record, index] = <[Option<Vec<u8>>; 2]>::try_from(found)
            .map_err(|_| ApiError(500, "server_error", "the store answered short".into()))?;
        let Some(record) = record else {
            // After an attempt answered false, the record gone is that attempt's doing,
            // landed on a retry of the call.
            return match attempt {
                0 => Err(ApiError::not_found(id)),
                _ => Ok(deleted),
            };
        };
        let mut ids = ids_in(index.as_deref());
        ids.retain(|i| i != id);
        let index_change = match ids.is_empty() {
            true => None,
            false => Some(serde_json::to_vec(&ids).expect("ids serialize")),
        };
        let tx = Transaction {
            expect: vec![(keys[0].clone(), Some(record)), (keys[1].clone(), index)],
            changes: vec![
                Change {
                    key: keys[0].clone(),
                    value: None,
                    ttl_ms: 0,
                },
                Change {
                    key: keys[1].clone(),
                    value: index_change,
                    ttl_ms: RECORD_TTL_MS,
                },
            ],
        };
        if host.store_apply(tx).map_err(|e| ApiError::store(host, e))? {
            return Ok(deleted);
        }
    }
    Err(busy())
}

fn busy() -> ApiError {
    ApiError(
        503,
        "temporarily_unavailable",
        "other changes to the clients kept landing first: try again".into(),
    )
}

fn ids_in(index: Option<&[u8]>) -> Vec<String> {
    index
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or_default()
}

/// The ids of every client registered at runtime, from the 16 indexes in one round trip.
pub(super) fn runtime_ids(host: &impl Host) -> Result<Vec<String>, StoreError> {
    let index_keys: Vec<String> = "0123456789abcdef".chars().map(index_key_of).collect();
    let indexes = host.store_get_many(&index_keys)?;
    Ok(indexes
        .iter()
        .flat_map(|index| ids_in(index.as_deref()))
        .collect())
}

/// What [`insert`] did.
pub(super) enum Inserted {
    Yes,
    /// The id is taken.
    Taken,
    /// The id's bucket holds `most_in_bucket` ids, or as many as its index can.
    Full,
}

/// Writes a new client and adds it to its bucket's index, together, unless its id is taken
/// or its bucket full. The index is compared and set with the record, so of concurrent
/// inserts into one bucket none goes past `most_in_bucket`.
pub(super) fn insert(
    host: &impl Host,
    stored: &Stored,
    most_in_bucket: usize,
) -> Result<Inserted, StoreError> {
    let id = &stored.client_id;
    let (record, index) = (record_key(id), index_key(id));
    let value = serde_json::to_vec(stored).expect("a client serializes");
    for attempt in 0..ATTEMPTS {
        let found = host.store_get_many(&[record.clone(), index.clone()])?;
        let [current_record, current_index] = <[Option<Vec<u8>>; 2]>::try_from(found)
            .map_err(|_| StoreError::Unavailable("the store answered short".into()))?;
        if let Some(current) = current_record {
            // After an attempt answered false, this very record is that attempt's, landed
            // on a retry of the call.
            return Ok(match attempt > 0 && current == value {
                true => Inserted::Yes,
                false => Inserted::Taken,
            });
        }
        let mut ids = ids_in(current_index.as_deref());
        ids.retain(|i| i != id);
        if ids.len() >= most_in_bucket {
            return Ok(Inserted::Full);
        }
        ids.push(id.clone());
        ids.sort();
        let new_index = serde_json::to_vec(&ids).expect("ids serialize");
        if new_index.len() > MAX_INDEX_BYTES {
            return Ok(Inserted::Full);
        }
        let tx = Transaction {
            expect: vec![(record.clone(), None), (index.clone(), current_index)],
            changes: vec![
                Change {
                    key: record.clone(),
                    value: Some(value.clone()),
                    ttl_ms: RECORD_TTL_MS,
                },
                Change {
                    key: index.clone(),
                    value: Some(new_index),
                    ttl_ms: RECORD_TTL_MS,
                },
            ],
        };
        if host.store_apply(tx)? {
            return Ok(Inserted::Yes);
        }
    }
    Err(StoreError::Unavailable(
        "other changes to the clients kept landing first".into(),
    ))
}

/// The clients of `ids` (sorted) as Hydra shows them, by id: the configured ones from the
/// settings, the others read in one round trip; an id whose record is gone is left out.
fn shown_of(
    host: &impl Host,
    ids: &[String],
    configured: &[String],
) -> Result<Vec<(String, Value)>, ApiError> {
    let runtime: Vec<&String> = ids.iter().filter(|id| !configured.contains(id)).collect();
    let keys: Vec<String> = runtime.iter().map(|id| record_key(id)).collect();
    let records = match keys.is_empty() {
        true => Vec::new(),
        false => host
            .store_get_many(&keys)
            .map_err(|e| ApiError::store(host, e))?,
    };
    let mut stored = records.into_iter();
    let mut shown = Vec::with_capacity(ids.len());
    for id in ids {
        let client = match configured.contains(id) {
            true => host.client(id).map(|c| show_configured(host, &c)),
            false => stored
                .next()
                .flatten()
                .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
                .map(|record| show(&record, None, host)),
        };
        shown.extend(client.map(|c| (id.clone(), c)));
    }
    Ok(shown)
}

/// A page of every client, configured and registered here, by id: Hydra v2's
/// `page_size` and `page_token`, the next page in a `Link` header, and its `client_name`
/// and `owner` filters.
fn list(host: &impl Host, query: &[(String, String)]) -> Result<Response, ApiError> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let page_size = match param("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(size) => size
            .parse::<usize>()
            .ok()
            .filter(|s| (1..=MAX_PAGE_SIZE).contains(s))
            .ok_or_else(|| {
                ApiError(
                    400,
                    "invalid_request",
                    format!("page_size must be between 1 and {MAX_PAGE_SIZE}"),
                )
            })?,
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let after = match param("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            b64.decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError(400, "invalid_request", "page_token is malformed".into())
                })?,
        ),
    };
    let configured = host.configured_clients();
    let mut ids = runtime_ids(host).map_err(|e| ApiError::store(host, e))?;
    ids.extend(configured.iter().cloned());
    ids.sort();
    ids.dedup();
    let rest: Vec<String> = ids
        .into_iter()
        .filter(|id| after.as_ref().is_none_or(|after| id > after))
        .collect();
    // Hydra's filters, exact matches. Without one a page reads its own clients (one more,
    // to tell whether a page follows); with one, every client after the token is read, in
    // one round trip, and the matching ones are paged.
    let filters: Vec<(&str, &str)> = ["client_name", "owner"]
        .into_iter()
        .filter_map(|name| Some((name, param(name)?)))
        .collect();
    // Read a page's worth at a time (one round trip each), so that a filter that matches
    // little reads many clients without holding them all.
    let mut shown: Vec<(String, Value)> = Vec::new();
    let mut read_up_to = 0;
    while shown.len() <= page_size && read_up_to < rest.len() {
        let chunk = &rest[read_up_to..rest.len().min(read_up_to + page_size + 1)];
        read_up_to += chunk.len();
        shown.extend(
            shown_of(host, chunk, &configured)?
                .into_iter()
                .filter(|(_, c)| filters.iter().all(|(name, want)| c[*name] == *want)),
        );
    }
    shown.truncate(page_size + 1);
    // More follow if a match was left over, or ids were left unread.
    let more = shown.len() > page_size || read_up_to < rest.len();
    shown.truncate(page_size);
    let last = shown.last().map(|(id, _)| id.clone());
    let mut response = json(200, &shown.into_iter().map(|(_, c)| c).collect::<Vec<_>>());
    let mut query = format!("page_size={page_size}");
    for (name, value) in &filters {
        query.push_str(&format!("&{name}={}", crate::params::percent_encode(value)));
    }
    let link = |token: Option<&str>, rel: &str| match token {
        Some(token) => format!("</admin/clients?{query}&page_token={token}>; rel=\"{rel}\""),
        None => format!("</admin/clients?{query}>; rel=\"{rel}\""),
    };
    let mut links = vec![link(None, "first")];
    if let (true, Some(last)) = (more, last) {
        links.push(link(Some(&b64.encode(last.as_bytes())), "next"));
    }
    response.headers.push(("Link".into(), links.join(",")));
    Ok(response)
}
