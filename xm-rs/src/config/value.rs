//! Runtime values of the config evaluator, and the plain [`ConfigValue`] a finished
//! config exports.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::ast::FuncDef;

/// Values nest at most this deep before printing/comparing/exporting refuses
/// (also catches self-containing lists).
pub const MAX_VALUE_DEPTH: usize = 100;

/// A mutable list, shared like a Python list (`b = a; b.append(1)` changes `a`).
#[derive(Debug, Default)]
pub struct ListObj(pub RefCell<Vec<Value>>);

/// A dict: insertion-ordered pairs; configs hold few keys so lookup is a scan.
#[derive(Debug, Default)]
pub struct DictObj(pub RefCell<Vec<(Value, Value)>>);

/// Dropping a deeply nested list recursively would overflow the stack; unnest iteratively.
fn drop_iteratively(mut pending: Vec<Value>) {
    while let Some(value) = pending.pop() {
        match value {
            Value::List(rc) => {
                if let Ok(list) = Rc::try_unwrap(rc) {
                    pending.append(&mut list.0.borrow_mut());
                }
            }
            Value::Tuple(rc) => {
                if let Ok(items) = Rc::try_unwrap(rc) {
                    pending.extend(items);
                }
            }
            Value::Dict(rc) => {
                if let Ok(dict) = Rc::try_unwrap(rc) {
                    for (k, v) in dict.0.borrow_mut().drain(..) {
                        pending.push(k);
                        pending.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for ListObj {
    fn drop(&mut self) {
        drop_iteratively(std::mem::take(self.0.get_mut()));
    }
}

impl Drop for DictObj {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        for (k, v) in self.0.get_mut().drain(..) {
            pending.push(k);
            pending.push(v);
        }
        drop_iteratively(pending);
    }
}

/// Modules a config may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Commands,
    Os,
    OsPath,
    Sys,
    Re,
    String,
}

impl Module {
    pub fn name(self) -> &'static str {
        match self {
            Module::Commands => "commands",
            Module::Os => "os",
            Module::OsPath => "os.path",
            Module::Sys => "sys",
            Module::Re => "re",
            Module::String => "string",
        }
    }

    pub fn by_name(name: &str) -> Option<Module> {
        Some(match name {
            "commands" => Module::Commands,
            "os" => Module::Os,
            "os.path" | "posixpath" => Module::OsPath,
            "sys" => Module::Sys,
            "re" => Module::Re,
            "string" => Module::String,
            _ => return None,
        })
    }
}

/// A user function with its default values evaluated at `def` time, as Python does.
#[derive(Debug)]
pub struct Function {
    pub def: Rc<FuncDef>,
    pub defaults: Vec<Option<Value>>,
}

/// A compiled regular expression (`re.compile`).
#[derive(Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

/// A successful `re.match`/`re.search`.
#[derive(Debug)]
pub struct MatchObj {
    /// Group 0 is the whole match; unmatched groups are None.
    pub groups: Vec<Option<String>>,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<ListObj>),
    Tuple(Rc<Vec<Value>>),
    Dict(Rc<DictObj>),
    Function(Rc<Function>),
    /// A builtin function, module function or exception class, by name.
    Builtin(&'static str),
    /// `receiver.name` where `name` is a method of the receiver's type.
    Method(Rc<(Value, &'static str)>),
    Module(Module),
    XmVars,
    Pattern(Rc<Pattern>),
    Match(Rc<MatchObj>),
    /// An exception instance: class name and message.
    Exception(Rc<(&'static str, String)>),
}

impl Value {
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(ListObj(RefCell::new(items))))
    }

    pub fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(Rc::new(items))
    }

    pub fn dict(items: Vec<(Value, Value)>) -> Value {
        Value::Dict(Rc::new(DictObj(RefCell::new(items))))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Function(_) => "function",
            Value::Builtin(_) => "builtin_function_or_method",
            Value::Method(_) => "instancemethod",
            Value::Module(_) => "module",
            Value::XmVars => "Vars",
            Value::Pattern(_) => "SRE_Pattern",
            Value::Match(_) => "SRE_Match",
            Value::Exception(_) => "exception",
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.0.borrow().is_empty(),
            Value::Tuple(t) => !t.is_empty(),
            Value::Dict(d) => !d.0.borrow().is_empty(),
            _ => true,
        }
    }

    /// Numeric view for arithmetic: bools are ints, as in Python.
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Bool(b) => Some(Number::Int(i64::from(*b))),
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    /// Python equality; `None` when the values nest too deeply to compare.
    pub fn equals(&self, other: &Value, depth: usize) -> Option<bool> {
        if depth > MAX_VALUE_DEPTH {
            return None;
        }
        if let (Some(a), Some(b)) = (self.as_number(), other.as_number()) {
            return Some(a.as_f64_exact_eq(b));
        }
        Some(match (self, other) {
            (Value::None, Value::None) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                if Rc::ptr_eq(a, b) {
                    return Some(true);
                }
                return seq_equals(&a.0.borrow(), &b.0.borrow(), depth);
            }
            (Value::Tuple(a), Value::Tuple(b)) => return seq_equals(a, b, depth),
            (Value::Dict(a), Value::Dict(b)) => {
                let (a, b) = (a.0.borrow(), b.0.borrow());
                if a.len() != b.len() {
                    return Some(false);
                }
                for (key, value) in a.iter() {
                    let mut found = false;
                    for (other_key, other_value) in b.iter() {
                        if key.equals(other_key, depth + 1)? {
                            found = value.equals(other_value, depth + 1)?;
                            break;
                        }
                    }
                    if !found {
                        return Some(false);
                    }
                }
                true
            }
            (Value::Module(a), Value::Module(b)) => a == b,
            (Value::Builtin(a), Value::Builtin(b)) => a == b,
            (Value::Function(a), Value::Function(b)) => Rc::ptr_eq(a, b),
            (Value::XmVars, Value::XmVars) => true,
            _ => false,
        })
    }

    /// Python `repr()`; `None` when nested too deeply.
    pub fn repr(&self) -> Option<String> {
        let mut out = String::new();
        self.write_repr(&mut out, 0)?;
        Some(out)
    }

    /// Python `str()`; `None` when nested too deeply.
    pub fn to_str(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Float(f) => Some(format_float_str(*f)),
            Value::Exception(e) => Some(e.1.clone()),
            _ => self.repr(),
        }
    }

    fn write_repr(&self, out: &mut String, depth: usize) -> Option<()> {
        if depth > MAX_VALUE_DEPTH {
            return None;
        }
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_repr(*f)),
            Value::Str(s) => out.push_str(&repr_str(s)),
            Value::List(l) => {
                out.push('[');
                write_items(out, &l.0.borrow(), depth)?;
                out.push(']');
            }
            Value::Tuple(t) => {
                out.push('(');
                write_items(out, t, depth)?;
                if t.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Dict(d) => {
                out.push('{');
                for (i, (k, v)) in d.0.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out, depth + 1)?;
                    out.push_str(": ");
                    v.write_repr(out, depth + 1)?;
                }
                out.push('}');
            }
            Value::Function(f) => {
                let _ = write!(out, "<function {}>", f.def.name);
            }
            Value::Builtin(name) => {
                let _ = write!(out, "<built-in function {name}>");
            }
            Value::Method(m) => {
                let _ = write!(out, "<method {} of {} object>", m.1, m.0.type_name());
            }
            Value::Module(m) => {
                let _ = write!(out, "<module '{}'>", m.name());
            }
            Value::XmVars => out.push_str("<xm_vars>"),
            Value::Pattern(p) => {
                let _ = write!(out, "<_sre.SRE_Pattern {}>", repr_str(&p.source));
            }
            Value::Match(_) => out.push_str("<_sre.SRE_Match object>"),
            Value::Exception(e) => {
                let _ = write!(out, "{}({})", e.0, repr_str(&e.1));
            }
        }
        Some(())
    }
}

fn write_items(out: &mut String, items: &[Value], depth: usize) -> Option<()> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item.write_repr(out, depth + 1)?;
    }
    Some(())
}

fn seq_equals(a: &[Value], b: &[Value], depth: usize) -> Option<bool> {
    if a.len() != b.len() {
        return Some(false);
    }
    for (x, y) in a.iter().zip(b) {
        if !x.equals(y, depth + 1)? {
            return Some(false);
        }
    }
    Some(true)
}

/// Python 2 `repr` of a string: single quotes unless the text holds one and no double quote.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python 2 `repr(float)`: shortest round-trip form, always with a `.` or exponent.
pub fn format_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes `1e20`, Python `1e+20`.
        return match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp:0>2}"),
            Some((mantissa, exp)) => format!("{mantissa}e-{:0>2}", &exp[1..]),
            None => s,
        };
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python 2 `str(float)`: 12 significant digits.
pub fn format_float_str(f: f64) -> String {
    if !f.is_finite() || f == 0.0 {
        return format_float_repr(f);
    }
    let rounded: f64 = format!("{f:.11e}").parse().unwrap_or(f);
    format_float_repr(rounded)
}

/// An int or float operand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn to_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    fn as_f64_exact_eq(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (a, b) => a.to_f64() == b.to_f64(),
        }
    }
}

/// A value as a finished config exports it: what the typed model is built from.
///
/// In JSON it is the plain value, except a dict, which is `{"dict": [[key, value], ...]}`
/// (keys need not be strings, and a bare list of pairs would read back as a list).
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<ConfigValue>),
    Dict(Vec<(ConfigValue, ConfigValue)>),
}

impl ConfigValue {
    /// Converts a runtime value; `Err(type name)` for values that are not data
    /// (functions, modules, ...) and for values nested too deeply.
    pub fn from_value(value: &Value) -> Result<ConfigValue, &'static str> {
        Self::convert(value, 0)
    }

    fn convert(value: &Value, depth: usize) -> Result<ConfigValue, &'static str> {
        if depth > MAX_VALUE_DEPTH {
            return Err("value nested too deeply");
        }
        Ok(match value {
            Value::None => ConfigValue::None,
            Value::Bool(b) => ConfigValue::Bool(*b),
            Value::Int(i) => ConfigValue::Int(*i),
            Value::Float(f) => ConfigValue::Float(*f),
            Value::Str(s) => ConfigValue::Str(s.to_string()),
            Value::List(l) => ConfigValue::List(
                l.0.borrow()
                    .iter()
                    .map(|v| Self::convert(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Tuple(t) => ConfigValue::List(
                t.iter()
                    .map(|v| Self::convert(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Dict(d) => ConfigValue::Dict(
                d.0.borrow()
                    .iter()
                    .map(|(k, v)| {
                        Ok::<_, &'static str>((
                            Self::convert(k, depth + 1)?,
                            Self::convert(v, depth + 1)?,
                        ))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(other.type_name()),
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ConfigValue::None => "None",
            ConfigValue::Bool(_) => "a boolean",
            ConfigValue::Int(_) => "an integer",
            ConfigValue::Float(_) => "a float",
            ConfigValue::Str(_) => "a string",
            ConfigValue::List(_) => "a list",
            ConfigValue::Dict(_) => "a dict",
        }
    }

    /// Short Python-like rendering for messages and the human dry-run output.
    pub fn render(&self) -> String {
        match self {
            ConfigValue::None => "None".into(),
            ConfigValue::Bool(b) => if *b { "True" } else { "False" }.into(),
            ConfigValue::Int(i) => i.to_string(),
            ConfigValue::Float(f) => format_float_repr(*f),
            ConfigValue::Str(s) => repr_str(s),
            ConfigValue::List(items) => {
                format!(
                    "[{}]",
                    items
                        .iter()
                        .map(ConfigValue::render)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            ConfigValue::Dict(items) => format!(
                "{{{}}}",
                items
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.render(), v.render()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The JSON key that marks a dict (see [`ConfigValue`]).
const DICT_KEY: &str = "dict";

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ConfigValue::None => serializer.serialize_unit(),
            ConfigValue::Bool(b) => serializer.serialize_bool(*b),
            ConfigValue::Int(i) => serializer.serialize_i64(*i),
            ConfigValue::Float(f) => serializer.serialize_f64(*f),
            ConfigValue::Str(s) => serializer.serialize_str(s),
            ConfigValue::List(items) => items.serialize(serializer),
            ConfigValue::Dict(items) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(DICT_KEY, items)?;
                map.end()
            }
        }
    }
}

struct ConfigValueVisitor;

impl<'de> Visitor<'de> for ConfigValueVisitor {
    type Value = ConfigValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a config value (null, bool, number, string, list or {\"dict\": [...]})")
    }
    fn visit_unit<E: de::Error>(self) -> Result<ConfigValue, E> {
        Ok(ConfigValue::None)
    }
    fn visit_none<E: de::Error>(self) -> Result<ConfigValue, E> {
        Ok(ConfigValue::None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigValue, E> {
        i64::try_from(v)
            .map(ConfigValue::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 signed bits")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigValue, E> {
        Ok(ConfigValue::Str(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<ConfigValue>()? {
            items.push(item);
        }
        Ok(ConfigValue::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigValue, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("an empty object is not a config value"));
        };
        if key != DICT_KEY {
            return Err(de::Error::custom(format!(
                "unexpected key {key:?} (a dict is {{\"{DICT_KEY}\": [[key, value], ...]}})"
            )));
        }
        let items: Vec<(ConfigValue, ConfigValue)> = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("a dict object has exactly one key"));
        }
        Ok(ConfigValue::Dict(items))
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ConfigValue, D::Error> {
        deserializer.deserialize_any(ConfigValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_formatting_matches_python2() {
        assert_eq!(format_float_repr(1.0), "1.0");
        assert_eq!(format_float_repr(0.1), "0.1");
        assert_eq!(format_float_repr(1e20), "1e+20");
        assert_eq!(format_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(format_float_str(0.1 + 0.2), "0.3");
    }

    #[test]
    fn string_repr_picks_quotes_like_python() {
        assert_eq!(repr_str("a"), "'a'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'\"b\n"), "'a\\'\"b\\n'");
    }

    #[test]
    fn dropping_a_very_deep_list_does_not_overflow_the_stack() {
        let mut value = Value::list(Vec::new());
        for _ in 0..200_000 {
            value = Value::list(vec![value]);
        }
        assert!(
            value.repr().is_none(),
            "repr refuses values nested past the limit"
        );
        drop(value);
    }

    #[test]
    fn self_containing_list_is_refused_not_looped() {
        let list = Rc::new(ListObj::default());
        list.0.borrow_mut().push(Value::List(list.clone()));
        let value = Value::List(list.clone());
        assert!(value.repr().is_none());
        assert!(ConfigValue::from_value(&value).is_err());
        // Break the cycle so the test does not leak.
        list.0.borrow_mut().clear();
    }
}
