//! The schema compatibility classifier: what changed between two JSON Schemas of one message
//! version, field by field, and whether each change breaks the version.
//!
//! The rule is backward compatibility: every message that was valid under the old schema must
//! stay valid under the new one, because the streams keep every event (Limits retention) and
//! consumers and rebuilds read old events with the new schema. So narrowing anything (a removed
//! property, a new required one, a type change, a removed enum value, a changed `const`, a
//! tighter limit, a new `pattern` or `format`, a closed object) breaks the version, and
//! widening (a new optional property, a new enum value, a relaxed limit) does not. Removing a
//! property also breaks: consumers built on it lose it. Descriptions and titles never break.
//! A keyword this module does not know is reported as breaking, so the gate errs on the side
//! of a new version.
//!
//! It is pure: two `serde_json::Value`s in, a list of [`Change`]s out. `$ref`s into the same
//! document (`#/$defs/…`) are followed, `allOf` is merged, and a nullable written either as
//! `"type": ["string", "null"]` or as an `anyOf`/`oneOf` with a `{"type": "null"}` branch is the
//! same thing. Changes are reported at the instance path of the field (`/data/items/quantity`:
//! array elements add no segment), so a change to a shared `$defs` entry shows at every field
//! that uses it.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// What kind of change a [`Change`] is. Whether it breaks is [`Rule::is_breaking`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A property disappeared (or was renamed: a rename is a removal plus an addition).
    PropertyRemoved,
    /// A new property that messages must carry: old messages lack it.
    RequiredPropertyAdded,
    /// A new property that messages may leave out.
    OptionalPropertyAdded,
    /// An existing property became required.
    MadeRequired,
    /// A required property became optional.
    MadeOptional,
    /// The JSON type changed to one that old values do not have.
    TypeChanged,
    /// The type accepts more than before (`integer` → `number`, one more type).
    TypeWidened,
    /// `null` is no longer accepted (`["string", "null"]` → `"string"`).
    NullRemoved,
    /// `null` is accepted now.
    NullAdded,
    /// Enum values were removed, or values were restricted where any was accepted.
    EnumNarrowed,
    /// Enum values were added, or the restriction to a set of values was lifted.
    EnumWidened,
    /// A `const` changed to another value.
    ConstChanged,
    /// A limit got tighter or appeared (`maxLength` lowered, `minimum` raised, `uniqueItems`…).
    LimitTightened,
    /// A limit got looser or disappeared.
    LimitRelaxed,
    /// A `pattern` appeared or changed.
    PatternChanged,
    /// A `pattern` disappeared.
    PatternRemoved,
    /// A `format` appeared or changed.
    FormatChanged,
    /// A `format` disappeared.
    FormatRemoved,
    /// `additionalProperties` became `false`.
    AdditionalPropertiesClosed,
    /// `additionalProperties: false` was lifted.
    AdditionalPropertiesOpened,
    /// An `anyOf`/`oneOf` lost alternatives.
    UnionNarrowed,
    /// An `anyOf`/`oneOf` gained alternatives.
    UnionWidened,
    /// A description, title, example or default changed.
    AnnotationChanged,
    /// A keyword the classifier does not know changed; treated as breaking.
    Unclassified,
}

impl Rule {
    /// Whether a change of this kind breaks a version: a message valid before may be invalid
    /// now, or a field consumers rely on is gone.
    #[must_use]
    pub const fn is_breaking(self) -> bool {
        match self {
            Self::PropertyRemoved
            | Self::RequiredPropertyAdded
            | Self::MadeRequired
            | Self::TypeChanged
            | Self::NullRemoved
            | Self::EnumNarrowed
            | Self::ConstChanged
            | Self::LimitTightened
            | Self::PatternChanged
            | Self::FormatChanged
            | Self::AdditionalPropertiesClosed
            | Self::UnionNarrowed
            | Self::Unclassified => true,
            Self::OptionalPropertyAdded
            | Self::MadeOptional
            | Self::TypeWidened
            | Self::NullAdded
            | Self::EnumWidened
            | Self::LimitRelaxed
            | Self::PatternRemoved
            | Self::FormatRemoved
            | Self::AdditionalPropertiesOpened
            | Self::UnionWidened
            | Self::AnnotationChanged => false,
        }
    }
}

/// One change between two schemas.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Instance path of the field, e.g. `/data/items/quantity` (`/` for the message itself).
    pub pointer: String,
    /// What kind of change.
    pub rule: Rule,
    /// What changed, e.g. `type changed from integer to string`.
    pub detail: String,
}

impl Change {
    /// Whether this change breaks the version.
    #[must_use]
    pub const fn is_breaking(&self) -> bool {
        self.rule.is_breaking()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.detail)
    }
}

/// Every change from `old` to `new`, sorted by field, each with its rule. Empty when the two
/// accept the same messages and say the same about them.
#[must_use]
pub fn classify(old: &Value, new: &Value) -> Vec<Change> {
    let mut walk = Walk { old_root: old, new_root: new, changes: BTreeSet::new(), active: Vec::new() };
    walk.compare("", "", old, new);
    walk.changes.into_iter().collect()
}

/// Upper bounds: lowering one (or adding it) narrows.
const UPPER_LIMITS: [&str; 5] = ["maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties"];
/// Lower bounds: raising one (or adding it) narrows.
const LOWER_LIMITS: [&str; 5] = ["minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties"];
/// Keywords that never change which messages are valid.
const ANNOTATIONS: [&str; 10] = [
    "description",
    "title",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$id",
    "$schema",
];
/// Keywords handled structurally, or containers of what is reached through `$ref`.
const STRUCTURAL: [&str; 17] = [
    "$ref",
    "$defs",
    "definitions",
    "allOf",
    "anyOf",
    "oneOf",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "pattern",
    "format",
    "multipleOf",
    "uniqueItems",
];

/// How deep `$ref`s are followed inside one node before giving up (a chain, not a cycle).
const MAX_REF_CHAIN: usize = 32;

struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    changes: BTreeSet<Change>,
    /// The `$ref` pairs being compared further up: a recursive type compares once.
    active: Vec<(String, String)>,
}

/// A schema node with its `$ref`s followed, `allOf` merged and nullability pulled out.
#[derive(Debug, Default)]
struct Node {
    /// The keywords that apply.
    map: Map<String, Value>,
    /// Whether `null` is accepted.
    nullable: bool,
    /// The accepted JSON types other than `null`; `None` when unrestricted.
    types: Option<BTreeSet<String>>,
    /// The accepted values other than `null` (from `enum`, `const` or a union of constants).
    values: Option<Vec<Value>>,
    /// Whether `values` is a plain `const` (so a change is "const changed").
    is_const: bool,
    /// Alternatives of an `anyOf`/`oneOf` that are more than constants.
    branches: Vec<Value>,
    /// The `$ref` this node came from, if any (for cycle detection).
    reference: Option<String>,
}

impl Walk<'_> {
    fn push(&mut self, pointer: &str, prefix: &str, rule: Rule, detail: String) {
        let pointer = if pointer.is_empty() { "/".to_owned() } else { pointer.to_owned() };
        self.changes.insert(Change { pointer, rule, detail: format!("{prefix}{detail}") });
    }

    /// Compares the schemas of one field. `prefix` says which part of the field the schema is
    /// ("array items: "), since array elements add no pointer segment.
    fn compare(&mut self, pointer: &str, prefix: &str, old: &Value, new: &Value) {
        if let (Value::Bool(a), Value::Bool(b)) = (old, new) {
            if a != b {
                let rule = if *a { Rule::Unclassified } else { Rule::UnionWidened };
                self.push(pointer, prefix, rule, format!("schema changed from {a} to {b}"));
            }
            return;
        }
        let o = normalize(self.old_root, old);
        let n = normalize(self.new_root, new);
        let pair = (o.reference.clone().unwrap_or_default(), n.reference.clone().unwrap_or_default());
        let recursive = o.reference.is_some() && self.active.contains(&pair);
        if recursive {
            return;
        }
        self.active.push(pair);
        self.compare_nodes(pointer, prefix, &o, &n);
        self.active.pop();
    }

    fn compare_nodes(&mut self, pointer: &str, prefix: &str, o: &Node, n: &Node) {
        self.compare_null(pointer, prefix, o, n);
        self.compare_types(pointer, prefix, o, n);
        self.compare_values(pointer, prefix, o, n);
        self.compare_limits(pointer, prefix, &o.map, &n.map);
        for (keyword, removed_rule) in [("pattern", Rule::PatternRemoved), ("format", Rule::FormatRemoved)] {
            let changed_rule = if keyword == "pattern" { Rule::PatternChanged } else { Rule::FormatChanged };
            match (o.map.get(keyword), n.map.get(keyword)) {
                (None, Some(b)) => self.push(pointer, prefix, changed_rule, format!("{keyword} {b} added")),
                (Some(a), Some(b)) if a != b => {
                    self.push(pointer, prefix, changed_rule, format!("{keyword} changed from {a} to {b}"));
                }
                (Some(a), None) => self.push(pointer, prefix, removed_rule, format!("{keyword} {a} removed")),
                _ => {}
            }
        }
        self.compare_object(pointer, prefix, &o.map, &n.map);
        if let (Some(a), Some(b)) = (o.map.get("items"), n.map.get("items")) {
            self.compare(pointer, "array items: ", a, b);
        } else if let (None, Some(b)) = (o.map.get("items"), n.map.get("items")) {
            self.push(pointer, prefix, Rule::TypeChanged, format!("array items restricted to {b}"));
        } else if o.map.contains_key("items") {
            self.push(pointer, prefix, Rule::TypeWidened, "array items no longer restricted".into());
        }
        self.compare_branches(pointer, prefix, o, n);
        self.compare_annotations(pointer, prefix, &o.map, &n.map);
        self.compare_unknown(pointer, prefix, &o.map, &n.map);
    }

    fn compare_null(&mut self, pointer: &str, prefix: &str, o: &Node, n: &Node) {
        match (o.nullable, n.nullable) {
            (true, false) => self.push(
                pointer,
                prefix,
                Rule::NullRemoved,
                format!("null no longer allowed (narrowed from {} to {})", describe(o), describe(n)),
            ),
            (false, true) => self.push(pointer, prefix, Rule::NullAdded, "null now allowed".into()),
            _ => {}
        }
    }

    fn compare_types(&mut self, pointer: &str, prefix: &str, o: &Node, n: &Node) {
        match (&o.types, &n.types) {
            (Some(a), Some(b)) => {
                let covered = |t: &String| b.contains(t) || (t == "integer" && b.contains("number"));
                if !a.iter().all(covered) {
                    let detail = format!("type changed from {} to {}", join(a), join(b));
                    self.push(pointer, prefix, Rule::TypeChanged, detail);
                } else if a != b {
                    let detail = format!("type widened from {} to {}", join(a), join(b));
                    self.push(pointer, prefix, Rule::TypeWidened, detail);
                }
            }
            (None, Some(b)) => {
                self.push(pointer, prefix, Rule::TypeChanged, format!("type restricted to {}", join(b)));
            }
            (Some(a), None) => {
                self.push(
                    pointer,
                    prefix,
                    Rule::TypeWidened,
                    format!("type {} no longer restricted", join(a)),
                );
            }
            (None, None) => {}
        }
    }

    fn compare_values(&mut self, pointer: &str, prefix: &str, o: &Node, n: &Node) {
        match (&o.values, &n.values) {
            (Some(a), Some(b)) => {
                if o.is_const && n.is_const && a != b {
                    let detail = format!("const changed from {} to {}", list(a), list(b));
                    self.push(pointer, prefix, Rule::ConstChanged, detail);
                    return;
                }
                let removed: Vec<Value> = a.iter().filter(|v| !b.contains(v)).cloned().collect();
                let added: Vec<Value> = b.iter().filter(|v| !a.contains(v)).cloned().collect();
                if !removed.is_empty() {
                    let detail = format!("enum narrowed: {} removed", list(&removed));
                    self.push(pointer, prefix, Rule::EnumNarrowed, detail);
                }
                if !added.is_empty() {
                    self.push(
                        pointer,
                        prefix,
                        Rule::EnumWidened,
                        format!("enum widened: {} added", list(&added)),
                    );
                }
            }
            (None, Some(b)) => {
                let rule = if n.is_const { Rule::ConstChanged } else { Rule::EnumNarrowed };
                self.push(pointer, prefix, rule, format!("values restricted to {}", list(b)));
            }
            (Some(a), None) => {
                let detail = format!("values {} no longer restricted", list(a));
                self.push(pointer, prefix, Rule::EnumWidened, detail);
            }
            (None, None) => {}
        }
    }

    fn compare_limits(
        &mut self,
        pointer: &str,
        prefix: &str,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
    ) {
        for (keywords, tighter_when_lower) in [(&UPPER_LIMITS, true), (&LOWER_LIMITS, false)] {
            for keyword in keywords.iter() {
                let (a, b) =
                    (o.get(*keyword).and_then(Value::as_f64), n.get(*keyword).and_then(Value::as_f64));
                let (a_text, b_text) = (shown(o.get(*keyword)), shown(n.get(*keyword)));
                match (a, b) {
                    (Some(a), Some(b)) if a != b => {
                        let lowered = b < a;
                        let (rule, verb) = match (lowered, tighter_when_lower) {
                            (true, true) | (false, false) => (Rule::LimitTightened, verb(lowered)),
                            _ => (Rule::LimitRelaxed, verb(lowered)),
                        };
                        self.push(
                            pointer,
                            prefix,
                            rule,
                            format!("{keyword} {verb} from {a_text} to {b_text}"),
                        );
                    }
                    (None, Some(_)) => {
                        self.push(pointer, prefix, Rule::LimitTightened, format!("{keyword} {b_text} added"));
                    }
                    (Some(_), None) => {
                        self.push(pointer, prefix, Rule::LimitRelaxed, format!("{keyword} {a_text} removed"));
                    }
                    _ => {}
                }
            }
        }
        let unique = |m: &Map<String, Value>| m.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
        match (unique(o), unique(n)) {
            (false, true) => self.push(pointer, prefix, Rule::LimitTightened, "uniqueItems added".into()),
            (true, false) => self.push(pointer, prefix, Rule::LimitRelaxed, "uniqueItems removed".into()),
            _ => {}
        }
        match (o.get("multipleOf"), n.get("multipleOf")) {
            (None, Some(b)) => {
                self.push(pointer, prefix, Rule::LimitTightened, format!("multipleOf {b} added"))
            }
            (Some(a), Some(b)) if a != b => {
                self.push(
                    pointer,
                    prefix,
                    Rule::LimitTightened,
                    format!("multipleOf changed from {a} to {b}"),
                );
            }
            (Some(a), None) => {
                self.push(pointer, prefix, Rule::LimitRelaxed, format!("multipleOf {a} removed"))
            }
            _ => {}
        }
    }

    fn compare_object(
        &mut self,
        pointer: &str,
        prefix: &str,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
    ) {
        let empty = Map::new();
        let props = |m: &Map<String, Value>| m.get("properties").and_then(Value::as_object).cloned();
        let (op, np) = (props(o), props(n));
        let required = |m: &Map<String, Value>| -> BTreeSet<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let (or, nr) = (required(o), required(n));
        let (op_map, np_map) = (op.as_ref().unwrap_or(&empty), np.as_ref().unwrap_or(&empty));
        for (name, old_schema) in op_map {
            let at = format!("{pointer}/{}", escape(name));
            match np_map.get(name) {
                None => self.push(&at, "", Rule::PropertyRemoved, "property removed".into()),
                Some(new_schema) => {
                    self.compare(&at, "", old_schema, new_schema);
                    match (or.contains(name), nr.contains(name)) {
                        (false, true) => {
                            self.push(&at, "", Rule::MadeRequired, "property made required".into())
                        }
                        (true, false) => {
                            self.push(&at, "", Rule::MadeOptional, "property made optional".into())
                        }
                        _ => {}
                    }
                }
            }
        }
        for name in np_map.keys().filter(|name| !op_map.contains_key(*name)) {
            let at = format!("{pointer}/{}", escape(name));
            if nr.contains(name) {
                self.push(&at, "", Rule::RequiredPropertyAdded, "new required property".into());
            } else {
                self.push(&at, "", Rule::OptionalPropertyAdded, "new optional property".into());
            }
        }
        // Required names without a `properties` entry on either side.
        for name in
            nr.difference(&or).filter(|name| !op_map.contains_key(*name) && !np_map.contains_key(*name))
        {
            let at = format!("{pointer}/{}", escape(name));
            self.push(&at, "", Rule::MadeRequired, "property made required".into());
        }

        let closed = |v: Option<&Value>| v == Some(&Value::Bool(false));
        let (oa, na) = (o.get("additionalProperties"), n.get("additionalProperties"));
        match (closed(oa), closed(na)) {
            (false, true) => self.push(
                pointer,
                prefix,
                Rule::AdditionalPropertiesClosed,
                "additionalProperties made false".into(),
            ),
            (true, false) => self.push(
                pointer,
                prefix,
                Rule::AdditionalPropertiesOpened,
                "additionalProperties no longer false".into(),
            ),
            _ => {
                if let (Some(a @ Value::Object(_)), Some(b @ Value::Object(_))) = (oa, na) {
                    self.compare(&format!("{pointer}/*"), "", a, b);
                }
            }
        }
    }

    fn compare_branches(&mut self, pointer: &str, prefix: &str, o: &Node, n: &Node) {
        let (a, b) = (&o.branches, &n.branches);
        if a.is_empty() && b.is_empty() {
            return;
        }
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            self.compare(pointer, &format!("{prefix}alternative {}: ", i + 1), x, y);
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => {
                let detail = format!("alternatives narrowed from {} to {}", a.len(), b.len());
                self.push(pointer, prefix, Rule::UnionNarrowed, detail);
            }
            std::cmp::Ordering::Less => {
                let detail = format!("alternatives widened from {} to {}", a.len(), b.len());
                self.push(pointer, prefix, Rule::UnionWidened, detail);
            }
            std::cmp::Ordering::Equal => {}
        }
    }

    fn compare_annotations(
        &mut self,
        pointer: &str,
        prefix: &str,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
    ) {
        for keyword in ANNOTATIONS {
            if o.get(keyword) != n.get(keyword) {
                self.push(pointer, prefix, Rule::AnnotationChanged, format!("{keyword} changed"));
            }
        }
    }

    fn compare_unknown(
        &mut self,
        pointer: &str,
        prefix: &str,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
    ) {
        let known = |k: &str| {
            STRUCTURAL.contains(&k)
                || ANNOTATIONS.contains(&k)
                || UPPER_LIMITS.contains(&k)
                || LOWER_LIMITS.contains(&k)
        };
        let keys: BTreeSet<&String> = o.keys().chain(n.keys()).filter(|k| !known(k)).collect();
        for keyword in keys {
            if o.get(keyword) != n.get(keyword) {
                let detail = format!("keyword {keyword} changed; the gate cannot tell whether that narrows");
                self.push(pointer, prefix, Rule::Unclassified, detail);
            }
        }
    }
}

fn verb(lowered: bool) -> &'static str {
    if lowered { "lowered" } else { "raised" }
}

fn shown(value: Option<&Value>) -> String {
    value.map(Value::to_string).unwrap_or_default()
}

/// Escapes a property name as a JSON pointer segment (RFC 6901).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn join(types: &BTreeSet<String>) -> String {
    if types.len() == 1 {
        types.iter().cloned().collect()
    } else {
        format!("[{}]", types.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

fn list(values: &[Value]) -> String {
    values.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")
}

/// `string`, `[string, null]`, `any`: how a node's type reads in a message.
fn describe(node: &Node) -> String {
    let mut types: Vec<String> = node.types.iter().flatten().cloned().collect();
    if types.is_empty() {
        types.push("any".into());
    }
    if node.nullable {
        types.push("null".into());
    }
    if types.len() == 1 { types.remove(0) } else { format!("[{}]", types.join(", ")) }
}

/// Follows `$ref`s (into the same document) and merges `allOf`: the referenced schema's
/// keywords, overlaid by the referring node's own (a `description` beside a `$ref` wins).
fn resolve(root: &Value, node: &Value) -> (Map<String, Value>, Option<String>) {
    let mut map = node.as_object().cloned().unwrap_or_default();
    let mut first_ref = None;
    for _ in 0..MAX_REF_CHAIN {
        let Some(Value::String(reference)) = map.remove("$ref") else { break };
        let target = reference.strip_prefix('#').and_then(|pointer| root.pointer(pointer));
        first_ref.get_or_insert_with(|| reference.clone());
        let Some(Value::Object(target)) = target else {
            // An unresolvable reference stays visible, so a change to it is still reported.
            map.insert("$ref".into(), Value::String(reference));
            break;
        };
        let mut merged = target.clone();
        merged.extend(map);
        map = merged;
    }
    if let Some(Value::Array(parts)) = map.remove("allOf") {
        let mut merged = Map::new();
        for part in &parts {
            merged.extend(resolve(root, part).0);
        }
        merged.extend(map);
        map = merged;
    }
    (map, first_ref)
}

fn is_null_schema(root: &Value, schema: &Value) -> bool {
    let (map, _) = resolve(root, schema);
    map.get("type") == Some(&Value::String("null".into()))
        || map.get("const") == Some(&Value::Null)
        || map.get("enum").and_then(Value::as_array).is_some_and(|v| v.len() == 1 && v[0].is_null())
}

/// The constants a schema accepts when it is nothing but constants (`const` or `enum`).
fn constants_of(map: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(value) = map.get("const") {
        return Some(vec![value.clone()]);
    }
    map.get("enum").and_then(Value::as_array).cloned()
}

fn types_of(map: &Map<String, Value>) -> (Option<BTreeSet<String>>, bool) {
    match map.get("type") {
        Some(Value::String(t)) if t == "null" => (Some(BTreeSet::new()), true),
        Some(Value::String(t)) => (Some(BTreeSet::from([t.clone()])), false),
        Some(Value::Array(ts)) => {
            let names: BTreeSet<String> = ts.iter().filter_map(Value::as_str).map(str::to_owned).collect();
            let nullable = names.contains("null");
            (Some(names.into_iter().filter(|t| t != "null").collect()), nullable)
        }
        _ => (None, false),
    }
}

fn normalize(root: &Value, schema: &Value) -> Node {
    let (mut map, reference) = resolve(root, schema);
    let mut node = Node { reference, ..Node::default() };
    let union = ["anyOf", "oneOf"].into_iter().find_map(|k| map.remove(k));
    if let Some(Value::Array(branches)) = union {
        let (nulls, rest): (Vec<Value>, Vec<Value>) =
            branches.into_iter().partition(|b| is_null_schema(root, b));
        node.nullable = !nulls.is_empty();
        let resolved: Vec<Map<String, Value>> = rest.iter().map(|b| resolve(root, b).0).collect();
        let all_constants = !resolved.is_empty() && resolved.iter().all(|b| constants_of(b).is_some());
        if all_constants {
            let mut values = Vec::new();
            let mut types = BTreeSet::new();
            let mut typed = true;
            for branch in &resolved {
                values.extend(constants_of(branch).into_iter().flatten());
                match types_of(branch).0 {
                    Some(ts) => types.extend(ts),
                    None => typed = false,
                }
            }
            node.values = Some(values);
            if typed {
                map.insert("type".into(), Value::Array(types.into_iter().map(Value::String).collect()));
            }
        } else if let [only] = rest.as_slice() {
            // `Option<T>` as `anyOf: [T, null]`: T's keywords, under the outer annotations.
            let (mut merged, inner_ref) = resolve(root, only);
            merged.extend(map);
            map = merged;
            node.reference = node.reference.or(inner_ref);
        } else {
            node.branches = rest;
        }
    }
    let (types, nullable) = types_of(&map);
    node.types = types;
    node.nullable |= nullable;
    if node.values.is_none() {
        node.is_const = map.contains_key("const");
        node.values = constants_of(&map);
    }
    if let Some(values) = node.values.as_mut()
        && values.iter().any(Value::is_null)
    {
        node.nullable = true;
        values.retain(|v| !v.is_null());
    }
    node.map = map;
    node
}

/// Groups changes by whether they break: `(breaking, compatible)`.
#[must_use]
pub fn partition(changes: &[Change]) -> (Vec<&Change>, Vec<&Change>) {
    changes.iter().partition(|c| c.is_breaking())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An object schema with the given properties, every one required.
    fn object(properties: Value) -> Value {
        let required: Vec<String> = properties.as_object().unwrap().keys().cloned().collect();
        json!({"type": "object", "additionalProperties": false, "properties": properties, "required": required})
    }

    /// `(pointer, rule)` of every change.
    fn rules(old: &Value, new: &Value) -> Vec<(String, Rule)> {
        classify(old, new).into_iter().map(|c| (c.pointer, c.rule)).collect()
    }

    fn only(old: &Value, new: &Value) -> (String, Rule) {
        let changes = rules(old, new);
        assert_eq!(changes.len(), 1, "{changes:?}");
        changes.into_iter().next().unwrap()
    }

    fn field(old: Value, new: Value) -> (String, Rule) {
        only(&object(json!({ "f": old })), &object(json!({ "f": new })))
    }

    #[test]
    fn identical_schemas_have_no_changes() {
        let schema = object(json!({"a": {"type": "string", "maxLength": 3}}));
        assert!(classify(&schema, &schema).is_empty());
    }

    #[test]
    fn a_removed_property_breaks() {
        let old = object(json!({"a": {"type": "string"}, "b": {"type": "string"}}));
        let new = object(json!({"a": {"type": "string"}}));
        assert_eq!(only(&old, &new), ("/b".into(), Rule::PropertyRemoved));
        assert!(Rule::PropertyRemoved.is_breaking());
    }

    #[test]
    fn a_renamed_property_is_a_removal_and_a_new_required_property() {
        let old = object(json!({"a": {"type": "string"}}));
        let new = object(json!({"b": {"type": "string"}}));
        assert_eq!(
            rules(&old, &new),
            [("/a".into(), Rule::PropertyRemoved), ("/b".into(), Rule::RequiredPropertyAdded)]
        );
    }

    #[test]
    fn a_new_required_property_breaks_and_a_new_optional_one_does_not() {
        let old = object(json!({"a": {"type": "string"}}));
        let required = object(json!({"a": {"type": "string"}, "b": {"type": "string"}}));
        assert_eq!(only(&old, &required), ("/b".into(), Rule::RequiredPropertyAdded));
        assert!(Rule::RequiredPropertyAdded.is_breaking());

        let mut optional = required.clone();
        optional["required"] = json!(["a"]);
        assert_eq!(only(&old, &optional), ("/b".into(), Rule::OptionalPropertyAdded));
        assert!(!Rule::OptionalPropertyAdded.is_breaking());
    }

    #[test]
    fn making_a_property_required_breaks_and_optional_does_not() {
        let mut optional = object(json!({"a": {"type": "string"}}));
        optional["required"] = json!([]);
        let required = object(json!({"a": {"type": "string"}}));
        assert_eq!(only(&optional, &required), ("/a".into(), Rule::MadeRequired));
        assert_eq!(only(&required, &optional), ("/a".into(), Rule::MadeOptional));
        assert!(Rule::MadeRequired.is_breaking() && !Rule::MadeOptional.is_breaking());
    }

    #[test]
    fn a_type_change_breaks_and_a_widening_does_not() {
        assert_eq!(
            field(json!({"type": "integer"}), json!({"type": "string"})),
            ("/f".into(), Rule::TypeChanged)
        );
        assert_eq!(
            field(json!({"type": "integer"}), json!({"type": "number"})),
            ("/f".into(), Rule::TypeWidened)
        );
        assert_eq!(
            field(json!({"type": "number"}), json!({"type": "integer"})),
            ("/f".into(), Rule::TypeChanged)
        );
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": ["string", "integer"]})),
            ("/f".into(), Rule::TypeWidened)
        );
    }

    #[test]
    fn narrowing_a_nullable_to_its_type_breaks() {
        let (pointer, rule) = field(json!({"type": ["string", "null"]}), json!({"type": "string"}));
        assert_eq!((pointer.as_str(), rule), ("/f", Rule::NullRemoved));
        assert!(rule.is_breaking());
        let detail = &classify(
            &object(json!({"f": {"type": ["string", "null"]}})),
            &object(json!({"f": {"type": "string"}})),
        )[0]
        .detail;
        assert!(detail.contains("[string, null] to string"), "{detail}");
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": ["string", "null"]})),
            ("/f".into(), Rule::NullAdded)
        );
    }

    #[test]
    fn a_nullable_ref_written_as_any_of_is_the_same_as_a_type_list() {
        let defs = json!({"Id": {"type": "string", "maxLength": 36}});
        let any_of = json!({"$defs": defs, "type": "object", "properties": {
            "f": {"anyOf": [{"$ref": "#/$defs/Id"}, {"type": "null"}]}}, "required": ["f"]});
        let type_list = json!({"$defs": defs, "type": "object", "properties": {
            "f": {"type": ["string", "null"], "maxLength": 36}}, "required": ["f"]});
        assert!(classify(&any_of, &type_list).is_empty(), "{:?}", classify(&any_of, &type_list));

        let not_null = json!({"$defs": defs, "type": "object", "properties": {
            "f": {"$ref": "#/$defs/Id"}}, "required": ["f"]});
        assert_eq!(only(&any_of, &not_null), ("/f".into(), Rule::NullRemoved));
        assert_eq!(only(&not_null, &any_of), ("/f".into(), Rule::NullAdded));
    }

    #[test]
    fn changes_behind_refs_show_at_the_field_of_an_array_item() {
        let schema = |quantity_type: &str| {
            json!({
                "$defs": {
                    "Item": {"type": "object", "properties": {"quantity": {"$ref": "#/$defs/Quantity"}}, "required": ["quantity"]},
                    "Quantity": {"type": quantity_type, "minimum": 1},
                    "Created": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}}, "required": ["items"]},
                },
                "type": "object",
                "properties": {"data": {"$ref": "#/$defs/Created", "description": "payload"}},
                "required": ["data"],
            })
        };
        let changes = classify(&schema("integer"), &schema("string"));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].pointer, "/data/items/quantity");
        assert_eq!(changes[0].rule, Rule::TypeChanged);
        assert_eq!(changes[0].to_string(), "/data/items/quantity: type changed from integer to string");
    }

    #[test]
    fn a_change_to_array_items_is_named_as_such() {
        let (pointer, rule) = field(
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "array", "items": {"type": "integer"}}),
        );
        assert_eq!((pointer.as_str(), rule), ("/f", Rule::TypeChanged));
        let changes = classify(
            &object(json!({"f": {"type": "array", "items": {"type": "string"}}})),
            &object(json!({"f": {"type": "array", "items": {"type": "integer"}}})),
        );
        assert!(changes[0].detail.starts_with("array items: "), "{}", changes[0].detail);
    }

    #[test]
    fn a_removed_enum_value_breaks_and_an_added_one_does_not() {
        let one_of = |values: &[&str]| json!({"oneOf": values.iter().map(|v| json!({"const": v, "type": "string"})).collect::<Vec<_>>()});
        assert_eq!(field(one_of(&["a", "b"]), one_of(&["a"])), ("/f".into(), Rule::EnumNarrowed));
        assert_eq!(field(one_of(&["a"]), one_of(&["a", "b"])), ("/f".into(), Rule::EnumWidened));
        assert_eq!(
            field(json!({"enum": ["a", "b"]}), json!({"enum": ["b"]})),
            ("/f".into(), Rule::EnumNarrowed)
        );
        assert_eq!(
            field(json!({"enum": ["a"]}), json!({"enum": ["a", "c"]})),
            ("/f".into(), Rule::EnumWidened)
        );
        // A `oneOf` of constants and an `enum` of the same values accept the same.
        assert!(
            rules(
                &object(json!({"f": one_of(&["a", "b"])})),
                &object(json!({"f": {"type": "string", "enum": ["a", "b"]}}))
            )
            .is_empty()
        );
        assert!(Rule::EnumNarrowed.is_breaking() && !Rule::EnumWidened.is_breaking());
    }

    #[test]
    fn a_changed_const_breaks() {
        let (pointer, rule) = field(
            json!({"type": "string", "const": "orderflow.orders.created.v1"}),
            json!({"type": "string", "const": "orderflow.orders.created.v2"}),
        );
        assert_eq!((pointer.as_str(), rule), ("/f", Rule::ConstChanged));
        assert!(rule.is_breaking());
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": "string", "const": "x"})),
            ("/f".into(), Rule::ConstChanged)
        );
    }

    #[test]
    fn lowering_an_upper_limit_or_raising_a_lower_one_breaks() {
        for (keyword, base, tighter, looser) in [
            ("maxLength", 64, 32, 128),
            ("maximum", 100, 10, 1000),
            ("maxItems", 100, 50, 200),
            ("minLength", 1, 2, 0),
            ("minimum", 1, 5, 0),
            ("minItems", 1, 2, 0),
        ] {
            let (_, rule) = field(json!({ keyword: base }), json!({ keyword: tighter }));
            assert_eq!(rule, Rule::LimitTightened, "{keyword} {base} -> {tighter}");
            let (_, rule) = field(json!({ keyword: base }), json!({ keyword: looser }));
            assert_eq!(rule, Rule::LimitRelaxed, "{keyword} {base} -> {looser}");
        }
        assert!(Rule::LimitTightened.is_breaking() && !Rule::LimitRelaxed.is_breaking());
    }

    #[test]
    fn adding_a_limit_breaks_and_removing_one_does_not() {
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": "string", "maxLength": 8})),
            ("/f".into(), Rule::LimitTightened)
        );
        assert_eq!(
            field(json!({"type": "integer", "minimum": 0}), json!({"type": "integer"})),
            ("/f".into(), Rule::LimitRelaxed)
        );
        assert_eq!(
            field(json!({"type": "array"}), json!({"type": "array", "uniqueItems": true})),
            ("/f".into(), Rule::LimitTightened)
        );
    }

    #[test]
    fn a_new_or_changed_pattern_or_format_breaks_and_a_removed_one_does_not() {
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": "string", "pattern": "^a"})),
            ("/f".into(), Rule::PatternChanged)
        );
        assert_eq!(
            field(json!({"pattern": "^a"}), json!({"pattern": "^b"})),
            ("/f".into(), Rule::PatternChanged)
        );
        assert_eq!(field(json!({"pattern": "^a"}), json!({})), ("/f".into(), Rule::PatternRemoved));
        assert_eq!(
            field(json!({"type": "string"}), json!({"type": "string", "format": "uuid"})),
            ("/f".into(), Rule::FormatChanged)
        );
        assert_eq!(
            field(json!({"format": "uuid"}), json!({"format": "date-time"})),
            ("/f".into(), Rule::FormatChanged)
        );
        assert_eq!(field(json!({"format": "uuid"}), json!({})), ("/f".into(), Rule::FormatRemoved));
        assert!(Rule::PatternChanged.is_breaking() && Rule::FormatChanged.is_breaking());
        assert!(!Rule::PatternRemoved.is_breaking() && !Rule::FormatRemoved.is_breaking());
    }

    #[test]
    fn closing_an_object_breaks_and_opening_it_does_not() {
        let closed = object(json!({"a": {"type": "string"}}));
        let mut open = closed.clone();
        open.as_object_mut().unwrap().remove("additionalProperties");
        assert_eq!(only(&open, &closed), ("/".into(), Rule::AdditionalPropertiesClosed));
        assert_eq!(only(&closed, &open), ("/".into(), Rule::AdditionalPropertiesOpened));
        assert!(Rule::AdditionalPropertiesClosed.is_breaking());
    }

    #[test]
    fn a_description_change_is_compatible() {
        let (pointer, rule) = field(
            json!({"type": "string", "description": "old"}),
            json!({"type": "string", "description": "new"}),
        );
        assert_eq!((pointer.as_str(), rule), ("/f", Rule::AnnotationChanged));
        assert!(!rule.is_breaking());
    }

    #[test]
    fn nested_objects_are_compared_field_by_field() {
        let old = object(
            json!({"data": object(json!({"line": object(json!({"sku": {"type": "string", "maxLength": 64}}))}))}),
        );
        let new = object(
            json!({"data": object(json!({"line": object(json!({"sku": {"type": "string", "maxLength": 32}}))}))}),
        );
        assert_eq!(only(&old, &new), ("/data/line/sku".into(), Rule::LimitTightened));
    }

    #[test]
    fn an_unknown_keyword_that_changed_is_treated_as_breaking() {
        let (_, rule) =
            field(json!({"dependentRequired": {"a": ["b"]}}), json!({"dependentRequired": {"a": ["c"]}}));
        assert_eq!(rule, Rule::Unclassified);
        assert!(rule.is_breaking());
    }

    #[test]
    fn losing_an_alternative_of_a_union_breaks() {
        let two = json!({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"b": {"type": "string"}}}]});
        let one_and_null = json!({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"b": {"type": "string"}}}, {"type": "object"}]});
        assert_eq!(field(one_and_null.clone(), two.clone()), ("/f".into(), Rule::UnionNarrowed));
        assert_eq!(field(two, one_and_null), ("/f".into(), Rule::UnionWidened));
    }

    #[test]
    fn recursive_refs_terminate() {
        let tree = |t: &str| json!({"$defs": {"Node": {"type": "object", "properties": {"v": {"type": t}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}, "$ref": "#/$defs/Node"});
        let changes = classify(&tree("string"), &tree("integer"));
        assert_eq!(
            changes.iter().map(|c| (c.pointer.as_str(), c.rule)).collect::<Vec<_>>(),
            [("/v", Rule::TypeChanged)]
        );
    }

    #[test]
    fn pointers_escape_slashes_and_tildes_in_property_names() {
        let old = object(json!({"a/b~c": {"type": "string"}}));
        let new = object(json!({}));
        assert_eq!(only(&old, &new).0, "/a~1b~0c");
    }
}
