//! JSON Patch (RFC 6902), for `PATCH /admin/clients/{id}`: the operations applied in
//! order to a document, all or nothing; `replace` of an object's member that is absent
//! adds it, as Hydra does.

use serde_json::Value;

/// `doc` with `patch` (a JSON array of operations) applied, or why it cannot be.
pub fn apply(mut doc: Value, patch: &Value) -> Result<Value, String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON Patch is an array of operations")?;
    for (i, op) in ops.iter().enumerate() {
        apply_one(&mut doc, op).map_err(|why| format!("operation {i}: {why}"))?;
    }
    Ok(doc)
}

fn apply_one(doc: &mut Value, op: &Value) -> Result<(), String> {
    let field = |name: &str| op.get(name).and_then(Value::as_str);
    let path = field("path").ok_or("has no path")?;
    let value = || op.get("value").cloned().ok_or("has no value");
    match field("op").ok_or("has no op")? {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(drop),
        // As Hydra: a member of an object is replaced whether or not it was there (a
        // client's JSON leaves out `client_secret`, which a patch sets so).
        "replace" if path.is_empty() => {
            *doc = value()?;
            Ok(())
        }
        "replace" => {
            let (parent, _) = split(path)?;
            if !doc.pointer(parent).is_some_and(Value::is_object) {
                remove(doc, path)?;
            }
            add(doc, path, value()?)
        }
        "move" => {
            let from = field("from").ok_or("has no from")?;
            if path.starts_with(&format!("{from}/")) {
                return Err(format!("cannot move {from:?} into itself"));
            }
            let moved = remove(doc, from)?;
            add(doc, path, moved)
        }
        "copy" => {
            let from = field("from").ok_or("has no from")?;
            let copied = doc
                .pointer(from)
                .cloned()
                .ok_or(format!("{from:?} is absent"))?;
            add(doc, path, copied)
        }
        "test" => match doc.pointer(path) {
            Some(found) if *found == value()? => Ok(()),
            _ => Err(format!("test of {path:?} failed")),
        },
        other => Err(format!("{other:?} is not an operation")),
    }
}

/// The parent of `path` and its last token, unescaped (`~1` is `/`, `~0` is `~`).
fn split(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or(format!("{path:?} is not a JSON Pointer"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let at = match last.as_str() {
                "-" => items.len(),
                index => index_in(index, items.len() + 1)?,
            };
            items.insert(at, value);
            Ok(())
        }
        _ => Err(format!("{parent:?} is not an object or array")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let removed = match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last),
        Some(Value::Array(items)) => {
            let at = index_in(&last, items.len())?;
            Some(items.remove(at))
        }
        _ => None,
    };
    removed.ok_or(format!("{path:?} is absent"))
}

/// `token` as an array index below `len` (no leading zeros, RFC 6901 section 4).
fn index_in(token: &str, len: usize) -> Result<usize, String> {
    let canonical = (token == "0" || !token.starts_with('0'))
        && !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit());
    match token.parse::<usize>() {
        Ok(i) if canonical && i < len => Ok(i),
        _ => Err(format!("{token:?} is not an index of the array")),
    }
}

#[cfg(test)]
mod tests {
    use super::apply;
    use serde_json::json;

    #[test]
    fn operations_apply_in_order_and_a_failed_one_changes_nothing() {
        let doc = json!({"a": [1, 2], "b": {"c": "x"}});
        let patch = json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": "y"},
            {"op": "move", "from": "/b", "path": "/d"},
            {"op": "copy", "from": "/a/0", "path": "/e"},
            {"op": "remove", "path": "/a/1"},
            {"op": "test", "path": "/e", "value": 1},
        ]);
        assert_eq!(
            apply(doc.clone(), &patch).unwrap(),
            json!({"a": [1, 3], "d": {"c": "y"}, "e": 1})
        );
        let failing = json!([{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/x", "value": 2}]);
        let why = apply(doc, &failing).unwrap_err();
        assert!(why.contains("operation 1"), "{why}");
        assert!(apply(json!({}), &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(apply(
            json!({"a": [1]}),
            &json!([{"op": "add", "path": "/a/01", "value": 0}])
        )
        .is_err());
        let plus = json!([{"op": "remove", "path": "/a/+1"}]);
        assert!(apply(json!({"a": [1, 2]}), &plus).is_err());
        let whole = json!([{"op": "replace", "path": "", "value": {"b": 2}}]);
        assert_eq!(apply(json!({"a": 1}), &whole).unwrap(), json!({"b": 2}));
    }
}
