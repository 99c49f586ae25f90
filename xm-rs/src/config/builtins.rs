//! Builtins, methods, operators and modules available to configs.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::rc::Rc;

use super::ast::BinOp;
use super::error::{LangError, LangErrorKind};
use super::eval::{fail, type_error, EResult, Interp, XmVarDecl, EXCEPTION_NAMES};
use super::host::{PathKind, ShellError};
use super::source::Span;
use super::value::{format_float_repr, repr_str, MatchObj, Module, Number, Pattern, Value};

const BUILTIN_FUNCTIONS: &[&str] = &[
    "int",
    "long",
    "str",
    "unicode",
    "float",
    "bool",
    "len",
    "range",
    "xrange",
    "hex",
    "oct",
    "list",
    "tuple",
    "dict",
    "repr",
    "abs",
    "min",
    "max",
    "sum",
    "sorted",
    "reversed",
    "enumerate",
    "zip",
    "map",
    "filter",
    "ord",
    "chr",
    "round",
    "cmp",
    "any",
    "all",
];

/// Builtins that exist in Python but are deliberately unavailable to configs.
const REFUSED_BUILTINS: &[(&str, &str)] = &[
    ("open", "reading or writing files"),
    ("file", "reading or writing files"),
    ("execfile", "running other files"),
    ("eval", "evaluating strings as code"),
    ("compile", "compiling code"),
    ("__import__", "dynamic imports"),
    ("input", "reading from the terminal"),
    ("raw_input", "reading from the terminal"),
    ("globals", "introspection"),
    ("locals", "introspection"),
    ("vars", "introspection"),
    ("getattr", "introspection"),
    ("setattr", "introspection"),
    ("reload", "reloading modules"),
    ("exit", "exiting"),
    ("quit", "exiting"),
    ("type", "introspection"),
    ("isinstance", "introspection"),
];

/// Module-level functions, named `module.function`.
const MODULE_FUNCTIONS: &[&str] = &[
    "commands.getoutput",
    "commands.getstatusoutput",
    "os.uname",
    "os.getenv",
    "os.path.exists",
    "os.path.isfile",
    "os.path.isdir",
    "os.path.join",
    "os.path.basename",
    "os.path.dirname",
    "os.path.split",
    "os.path.splitext",
    "re.search",
    "re.match",
    "re.sub",
    "re.split",
    "re.findall",
    "re.compile",
    "re.escape",
    "string.join",
    "string.split",
    "string.replace",
    "string.strip",
    "string.lstrip",
    "string.rstrip",
    "string.upper",
    "string.lower",
    "string.find",
    "string.rfind",
    "string.count",
    "string.atoi",
    "string.atol",
    "string.atof",
    "string.capitalize",
    "string.zfill",
    "string.ljust",
    "string.rjust",
    "string.center",
];

const STR_METHODS: &[&str] = &[
    "join",
    "split",
    "rsplit",
    "strip",
    "lstrip",
    "rstrip",
    "replace",
    "startswith",
    "endswith",
    "lower",
    "upper",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "isdigit",
    "isalpha",
    "isalnum",
    "isspace",
    "islower",
    "isupper",
    "splitlines",
    "capitalize",
    "title",
    "swapcase",
    "zfill",
    "ljust",
    "rjust",
    "center",
    "partition",
    "rpartition",
    "format",
    "encode",
    "decode",
];
const LIST_METHODS: &[&str] = &[
    "append", "extend", "insert", "pop", "remove", "index", "count", "sort", "reverse",
];
const DICT_METHODS: &[&str] = &[
    "get",
    "keys",
    "values",
    "items",
    "has_key",
    "update",
    "setdefault",
    "pop",
    "copy",
    "clear",
    "iterkeys",
    "itervalues",
    "iteritems",
];
const MATCH_METHODS: &[&str] = &["group", "groups", "start", "end", "span"];
const PATTERN_METHODS: &[&str] = &["search", "match", "sub", "split", "findall"];
const XMVARS_METHODS: &[&str] = &["var", "check"];

/// A builtin name's value, if it is one.
pub fn builtin(name: &str) -> Option<Value> {
    if let Some(n) = BUILTIN_FUNCTIONS
        .iter()
        .chain(EXCEPTION_NAMES)
        .find(|n| **n == name)
    {
        return Some(Value::Builtin(n));
    }
    if let Some((n, _)) = REFUSED_BUILTINS.iter().find(|(n, _)| *n == name) {
        return Some(Value::Builtin(n));
    }
    None
}

pub fn import(module: &str, span: Span) -> EResult<Value> {
    match Module::by_name(module) {
        Some(m) => Ok(Value::Module(m)),
        None => fail(span, LangErrorKind::UnknownModule(module.to_string())),
    }
}

fn find_static(list: &'static [&'static str], name: &str) -> Option<&'static str> {
    list.iter().copied().find(|n| *n == name)
}

pub fn get_attr(
    interp: &mut Interp<'_, '_>,
    value: &Value,
    name: &str,
    span: Span,
) -> EResult<Value> {
    let method_list: Option<&'static [&'static str]> = match value {
        Value::Str(_) => Some(STR_METHODS),
        Value::List(_) => Some(LIST_METHODS),
        Value::Dict(_) => Some(DICT_METHODS),
        Value::Match(_) => Some(MATCH_METHODS),
        Value::Pattern(_) => Some(PATTERN_METHODS),
        Value::XmVars => Some(XMVARS_METHODS),
        _ => None,
    };
    if let Some(list) = method_list {
        return match find_static(list, name) {
            Some(m) => Ok(Value::Method(Rc::new((value.clone(), m)))),
            None => fail(
                span,
                LangErrorKind::Attribute(format!(
                    "'{}' object has no attribute '{name}' (in the config subset)",
                    value.type_name()
                )),
            ),
        };
    }
    if let Value::Exception(e) = value {
        if name == "message" {
            return interp.new_str(e.1.clone(), span);
        }
    }
    let Value::Module(module) = value else {
        return fail(
            span,
            LangErrorKind::Attribute(format!(
                "'{}' object has no attribute '{name}'",
                value.type_name()
            )),
        );
    };
    let qualified = format!("{}.{name}", module.name());
    if let Some(f) = MODULE_FUNCTIONS.iter().find(|f| **f == qualified) {
        return Ok(Value::Builtin(f));
    }
    let host = interp.options.host;
    let constant = match (module, name) {
        (Module::Os, "path") => Value::Module(Module::OsPath),
        (Module::Os, "environ") => {
            if let Some(env) = &interp.environ_cache {
                return Ok(env.clone());
            }
            let mut pairs = Vec::new();
            for (k, v) in host.environ() {
                let k = interp.new_str(k, span)?;
                let v = interp.new_str(v, span)?;
                pairs.push((k, v));
            }
            let env = interp.new_dict(pairs, span)?;
            interp.environ_cache = Some(env.clone());
            env
        }
        (Module::Os, "sep") | (Module::OsPath, "sep") => Value::str("/"),
        (Module::Os, "linesep") => Value::str("\n"),
        (Module::Os, "name") => Value::str("posix"),
        (Module::Os, "curdir") => Value::str("."),
        (Module::Os, "pardir") => Value::str(".."),
        (Module::Sys, "argv") => {
            let argv0 = interp.new_str(interp.options.config_path.clone(), span)?;
            interp.new_list(vec![argv0], span)?
        }
        (Module::Sys, "platform") => Value::str("linux2"),
        (Module::Sys, "version") => Value::str("2.7.18 (xm-rs config evaluator)"),
        (Module::Sys, "maxint") => Value::Int(i64::MAX),
        (Module::Re, "I") | (Module::Re, "IGNORECASE") => Value::Int(2),
        (Module::Re, "M") | (Module::Re, "MULTILINE") => Value::Int(8),
        (Module::Re, "S") | (Module::Re, "DOTALL") => Value::Int(16),
        (Module::String, "letters") | (Module::String, "ascii_letters") => {
            Value::str("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        }
        (Module::String, "lowercase") | (Module::String, "ascii_lowercase") => {
            Value::str("abcdefghijklmnopqrstuvwxyz")
        }
        (Module::String, "uppercase") | (Module::String, "ascii_uppercase") => {
            Value::str("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        }
        (Module::String, "digits") => Value::str("0123456789"),
        (Module::String, "hexdigits") => Value::str("0123456789abcdefABCDEF"),
        (Module::String, "octdigits") => Value::str("01234567"),
        (Module::String, "whitespace") => Value::str("\t\n\x0b\x0c\r "),
        _ => {
            return fail(
                span,
                LangErrorKind::UnknownModuleAttr {
                    module: module.name().to_string(),
                    name: name.to_string(),
                },
            );
        }
    };
    Ok(constant)
}

// ---------------------------------------------------------------- argument helpers

struct Args<'a> {
    function: &'a str,
    positional: Vec<Value>,
    keywords: Vec<(String, Value)>,
    span: Span,
}

impl<'a> Args<'a> {
    fn new(
        function: &'a str,
        positional: Vec<Value>,
        keywords: Vec<(String, Value)>,
        span: Span,
    ) -> Self {
        Args {
            function,
            positional,
            keywords,
            span,
        }
    }

    /// Checks the count and that no keyword other than `allowed` is used.
    fn expect(&self, min: usize, max: usize, allowed: &[&str]) -> EResult<()> {
        let n = self.positional.len();
        if n < min || n > max {
            let wanted = if min == max {
                format!("exactly {min}")
            } else {
                format!("{min} to {max}")
            };
            return type_error(
                self.span,
                format!("{}() takes {wanted} arguments ({n} given)", self.function),
            );
        }
        if let Some((k, _)) = self
            .keywords
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            return type_error(
                self.span,
                format!(
                    "{}() got an unexpected keyword argument '{k}'",
                    self.function
                ),
            );
        }
        Ok(())
    }

    fn get(&self, index: usize, keyword: &str) -> Option<&Value> {
        self.positional.get(index).or_else(|| {
            self.keywords
                .iter()
                .find(|(k, _)| k == keyword)
                .map(|(_, v)| v)
        })
    }

    fn str_at(&self, index: usize, keyword: &str) -> EResult<Option<Rc<str>>> {
        match self.get(index, keyword) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(other) => type_error(
                self.span,
                format!(
                    "{}() argument {} must be a string, not {}",
                    self.function,
                    index + 1,
                    other.type_name()
                ),
            ),
        }
    }

    fn req_str(&self, index: usize, keyword: &str) -> EResult<Rc<str>> {
        self.str_at(index, keyword)?.ok_or_else(|| {
            LangError::new(
                self.span,
                LangErrorKind::Type(format!(
                    "{}() needs a string argument {}",
                    self.function,
                    index + 1
                )),
            )
        })
    }

    fn int_at(&self, index: usize, keyword: &str) -> EResult<Option<i64>> {
        match self.get(index, keyword) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(other) => type_error(
                self.span,
                format!(
                    "{}() argument {} must be an integer, not {}",
                    self.function,
                    index + 1,
                    other.type_name()
                ),
            ),
        }
    }
}

fn usize_arg(value: i64, span: Span, what: &str) -> EResult<usize> {
    usize::try_from(value).map_err(|_| {
        LangError::new(
            span,
            LangErrorKind::Value(format!("{what} must not be negative")),
        )
    })
}

// ---------------------------------------------------------------- builtin calls

pub fn call_builtin(
    interp: &mut Interp<'_, '_>,
    name: &'static str,
    positional: Vec<Value>,
    keywords: Vec<(String, Value)>,
    span: Span,
) -> EResult<Value> {
    if let Some((_, why)) = REFUSED_BUILTINS.iter().find(|(n, _)| *n == name) {
        return fail(
            span,
            LangErrorKind::Unsupported(format!("`{name}()` ({why} is not available to configs)")),
        );
    }
    if EXCEPTION_NAMES.contains(&name) {
        let message = match positional.first() {
            Some(v) => interp.to_str(v, span)?,
            None => String::new(),
        };
        return Ok(Value::Exception(Rc::new((name, message))));
    }
    if let Some((module, function)) = name.rsplit_once('.') {
        return call_module_function(
            interp,
            module,
            function,
            Args::new(name, positional, keywords, span),
        );
    }
    let a = Args::new(name, positional, keywords, span);
    match name {
        "int" | "long" => {
            a.expect(0, 2, &["base"])?;
            let base = a.int_at(1, "base")?;
            match (a.get(0, "x"), base) {
                (None, _) => Ok(Value::Int(0)),
                (Some(Value::Str(s)), base) => parse_int_str(s, base.unwrap_or(10), span),
                (Some(_), Some(_)) => {
                    type_error(span, "int() can't convert non-string with explicit base")
                }
                (Some(v), None) => to_int(v, span),
            }
        }
        "float" => {
            a.expect(0, 1, &[])?;
            match a.positional.first() {
                None => Ok(Value::Float(0.0)),
                Some(Value::Str(s)) => {
                    let t = s.trim();
                    let parsed = match t.to_ascii_lowercase().as_str() {
                        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
                        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                        "nan" => Some(f64::NAN),
                        _ if t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
                            t.parse().ok()
                        }
                        _ => None,
                    };
                    parsed.map(Value::Float).ok_or_else(|| {
                        LangError::new(
                            span,
                            LangErrorKind::Value(format!(
                                "could not convert string to float: {}",
                                repr_str(s)
                            )),
                        )
                    })
                }
                Some(v) => match v.as_number() {
                    Some(n) => Ok(Value::Float(n.to_f64())),
                    None => type_error(
                        span,
                        format!(
                            "float() argument must be a string or a number, not {}",
                            v.type_name()
                        ),
                    ),
                },
            }
        }
        "str" | "unicode" => {
            a.expect(0, 1, &[])?;
            match a.positional.first() {
                None => Ok(Value::str("")),
                Some(v) => {
                    let s = interp.to_str(v, span)?;
                    interp.new_str(s, span)
                }
            }
        }
        "repr" => {
            a.expect(1, 1, &[])?;
            let s = interp.repr(&a.positional[0], span)?;
            interp.new_str(s, span)
        }
        "bool" => {
            a.expect(0, 1, &[])?;
            Ok(Value::Bool(a.positional.first().is_some_and(Value::truthy)))
        }
        "len" => {
            a.expect(1, 1, &[])?;
            let n = match &a.positional[0] {
                Value::Str(s) => {
                    interp.scan(s.len(), span)?;
                    s.chars().count()
                }
                Value::List(l) => l.0.borrow().len(),
                Value::Tuple(t) => t.len(),
                Value::Dict(d) => d.0.borrow().len(),
                other => {
                    return type_error(
                        span,
                        format!("object of type '{}' has no len()", other.type_name()),
                    )
                }
            };
            Ok(Value::Int(n as i64))
        }
        "range" | "xrange" => {
            a.expect(1, 3, &[])?;
            let mut ints = Vec::new();
            for i in 0..a.positional.len() {
                ints.push(a.int_at(i, "")?.unwrap_or(0));
            }
            let (start, stop, step) = match ints.as_slice() {
                [stop] => (0, *stop, 1),
                [start, stop] => (*start, *stop, 1),
                [start, stop, step] => (*start, *stop, *step),
                _ => (0, 0, 1),
            };
            if step == 0 {
                return fail(
                    span,
                    LangErrorKind::Value("range() step argument must not be zero".into()),
                );
            }
            let count = if step > 0 {
                if stop > start {
                    ((stop as i128 - start as i128 + step as i128 - 1) / step as i128) as u128
                } else {
                    0
                }
            } else if start > stop {
                ((start as i128 - stop as i128 - step as i128 - 1) / (-(step as i128))) as u128
            } else {
                0
            };
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            interp.charge(count.saturating_mul(16), span)?;
            let items = (0..count)
                .map(|i| Value::Int((start as i128 + step as i128 * i as i128) as i64))
                .collect();
            interp.new_list(items, span)
        }
        "hex" | "oct" => {
            a.expect(1, 1, &[])?;
            let i = match &a.positional[0] {
                Value::Int(i) => *i,
                Value::Bool(b) => i64::from(*b),
                other => {
                    return type_error(
                        span,
                        format!(
                            "{name}() argument can't be converted to hex/oct: {}",
                            other.type_name()
                        ),
                    )
                }
            };
            let sign = if i < 0 { "-" } else { "" };
            let magnitude = i.unsigned_abs();
            let text = if name == "hex" {
                format!("{sign}0x{magnitude:x}")
            } else if magnitude == 0 {
                "0".to_string()
            } else {
                format!("{sign}0{magnitude:o}")
            };
            interp.new_str(text, span)
        }
        "list" | "tuple" => {
            a.expect(0, 1, &[])?;
            let items = match a.positional.first() {
                None => Vec::new(),
                Some(v) => iterate(interp, v, span)?,
            };
            if name == "list" {
                interp.new_list(items, span)
            } else {
                interp.new_tuple(items, span)
            }
        }
        "dict" => {
            a.expect(0, 1, &[])?;
            let dict = interp.new_dict(Vec::new(), span)?;
            if let Some(source) = a.positional.first() {
                update_dict(interp, &dict, source, span)?;
            }
            for (k, v) in a.keywords {
                let key = interp.new_str(k, span)?;
                set_item(interp, &dict, key, v, span)?;
            }
            Ok(dict)
        }
        "abs" => {
            a.expect(1, 1, &[])?;
            match a.positional[0].as_number() {
                Some(Number::Int(i)) => i.checked_abs().map(Value::Int).ok_or_else(|| {
                    LangError::new(
                        span,
                        LangErrorKind::Overflow("abs() of the smallest integer".into()),
                    )
                }),
                Some(Number::Float(f)) => Ok(Value::Float(f.abs())),
                None => type_error(
                    span,
                    format!(
                        "bad operand type for abs(): '{}'",
                        a.positional[0].type_name()
                    ),
                ),
            }
        }
        "min" | "max" => {
            if a.positional.is_empty() {
                return type_error(span, format!("{name}() expected at least 1 argument"));
            }
            a.expect(1, usize::MAX, &[])?;
            let items = if a.positional.len() == 1 {
                iterate(interp, &a.positional[0], span)?
            } else {
                a.positional.clone()
            };
            let mut best: Option<Value> = None;
            for item in items {
                best = Some(match best {
                    None => item,
                    Some(b) => {
                        let ord = order(interp, &item, &b, span)?;
                        let better = if name == "min" {
                            ord == Ordering::Less
                        } else {
                            ord == Ordering::Greater
                        };
                        if better {
                            item
                        } else {
                            b
                        }
                    }
                });
            }
            best.ok_or_else(|| {
                LangError::new(
                    span,
                    LangErrorKind::Value(format!("{name}() arg is an empty sequence")),
                )
            })
        }
        "sum" => {
            a.expect(1, 2, &[])?;
            let mut total = a.positional.get(1).cloned().unwrap_or(Value::Int(0));
            if matches!(total, Value::Str(_)) {
                return type_error(span, "sum() can't sum strings [use ''.join(seq) instead]");
            }
            for item in iterate(interp, &a.positional[0], span)? {
                total = binary(interp, BinOp::Add, &total, &item, span)?;
            }
            Ok(total)
        }
        "sorted" => {
            a.expect(1, 1, &["reverse", "key"])?;
            let mut items = iterate(interp, &a.positional[0], span)?;
            let key = a
                .keywords
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone());
            let reverse = a.keywords.iter().any(|(k, v)| k == "reverse" && v.truthy());
            sort_values(interp, &mut items, key.as_ref(), reverse, span)?;
            interp.new_list(items, span)
        }
        "reversed" => {
            a.expect(1, 1, &[])?;
            let mut items = iterate(interp, &a.positional[0], span)?;
            items.reverse();
            interp.new_list(items, span)
        }
        "enumerate" => {
            a.expect(1, 2, &["start"])?;
            let start = a.int_at(1, "start")?.unwrap_or(0);
            let items = iterate(interp, &a.positional[0], span)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(
                    interp
                        .new_tuple(vec![Value::Int(start.saturating_add(i as i64)), item], span)?,
                );
            }
            interp.new_list(out, span)
        }
        "zip" => {
            a.expect(0, usize::MAX, &[])?;
            let mut columns = Vec::new();
            for v in &a.positional {
                columns.push(iterate(interp, v, span)?);
            }
            let n = columns.iter().map(Vec::len).min().unwrap_or(0);
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let row = columns.iter().map(|c| c[i].clone()).collect();
                out.push(interp.new_tuple(row, span)?);
            }
            interp.new_list(out, span)
        }
        "map" | "filter" => {
            a.expect(2, 2, &[])?;
            let function = a.positional[0].clone();
            let items = iterate(interp, &a.positional[1], span)?;
            let mut out = Vec::new();
            for item in items {
                interp.step(span)?;
                if name == "map" {
                    out.push(interp.call(&function, vec![item], Vec::new(), span)?);
                } else {
                    let keep = match function {
                        Value::None => item.truthy(),
                        _ => interp
                            .call(&function, vec![item.clone()], Vec::new(), span)?
                            .truthy(),
                    };
                    if keep {
                        out.push(item);
                    }
                }
            }
            interp.new_list(out, span)
        }
        "ord" => {
            a.expect(1, 1, &[])?;
            let s = a.req_str(0, "")?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Value::Int(i64::from(u32::from(c)))),
                _ => type_error(
                    span,
                    format!(
                        "ord() expected a character, but string of length {} found",
                        s.chars().count()
                    ),
                ),
            }
        }
        "chr" => {
            a.expect(1, 1, &[])?;
            let i = a.int_at(0, "")?.unwrap_or(0);
            if !(0..128).contains(&i) {
                return fail(
                    span,
                    LangErrorKind::Value(format!(
                        "chr({i}): only ASCII (0..127) is available; configs are UTF-8 text"
                    )),
                );
            }
            let c = char::from(i as u8);
            interp.new_str(c.to_string(), span)
        }
        "round" => {
            a.expect(1, 2, &[])?;
            let x = a.positional[0]
                .as_number()
                .ok_or_else(|| {
                    LangError::new(span, LangErrorKind::Type("round() needs a number".into()))
                })?
                .to_f64();
            let digits = a.int_at(1, "ndigits")?.unwrap_or(0).clamp(-308, 308) as i32;
            let factor = 10f64.powi(digits);
            // Python 2 rounds half away from zero and returns a float.
            Ok(Value::Float((x * factor).round() / factor))
        }
        "cmp" => {
            a.expect(2, 2, &[])?;
            let ord = order(interp, &a.positional[0], &a.positional[1], span)?;
            Ok(Value::Int(match ord {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            }))
        }
        "any" | "all" => {
            a.expect(1, 1, &[])?;
            let items = iterate(interp, &a.positional[0], span)?;
            Ok(Value::Bool(if name == "any" {
                items.iter().any(Value::truthy)
            } else {
                items.iter().all(Value::truthy)
            }))
        }
        _ => fail(span, LangErrorKind::Unsupported(format!("`{name}()`"))),
    }
}

fn to_int(v: &Value, span: Span) -> EResult<Value> {
    match v {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Float(f) => {
            if f.is_finite() && f.abs() < 9.2e18 {
                Ok(Value::Int(f.trunc() as i64))
            } else {
                fail(
                    span,
                    LangErrorKind::Overflow(format!(
                        "cannot convert float {} to integer",
                        format_float_repr(*f)
                    )),
                )
            }
        }
        other => type_error(
            span,
            format!(
                "int() argument must be a string or a number, not '{}'",
                other.type_name()
            ),
        ),
    }
}

/// Python 2 `int(s, base)`.
pub fn parse_int_str(s: &str, base: i64, span: Span) -> EResult<Value> {
    let invalid = || {
        LangError::new(
            span,
            LangErrorKind::Value(format!(
                "invalid literal for int() with base {base}: {}",
                repr_str(s)
            )),
        )
    };
    if base != 0 && !(2..=36).contains(&base) {
        return fail(
            span,
            LangErrorKind::Value("int() base must be >= 2 and <= 36".into()),
        );
    }
    let t = s.trim();
    let t = t.strip_suffix(['l', 'L']).unwrap_or(t);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = match base {
        0 => {
            if let Some(rest) = lower.strip_prefix("0x") {
                (16, rest.to_string())
            } else if let Some(rest) = lower.strip_prefix("0o") {
                (8, rest.to_string())
            } else if let Some(rest) = lower.strip_prefix("0b") {
                (2, rest.to_string())
            } else if lower.len() > 1 && lower.starts_with('0') {
                (8, lower[1..].to_string())
            } else {
                (10, lower.clone())
            }
        }
        16 => (16, lower.strip_prefix("0x").unwrap_or(&lower).to_string()),
        8 => (8, lower.strip_prefix("0o").unwrap_or(&lower).to_string()),
        2 => (2, lower.strip_prefix("0b").unwrap_or(&lower).to_string()),
        b => (b as u32, lower.clone()),
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    let magnitude = i128::from_str_radix(&body, radix).map_err(|_| invalid())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map(Value::Int).map_err(|_| {
        LangError::new(
            span,
            LangErrorKind::Overflow(format!(
                "integer {} is too large for xm-rs (64-bit)",
                repr_str(s)
            )),
        )
    })
}

fn hashable(v: &Value) -> bool {
    match v {
        Value::None
        | Value::Bool(_)
        | Value::Int(_)
        | Value::Float(_)
        | Value::Str(_)
        | Value::Builtin(_)
        | Value::Module(_) => true,
        Value::Tuple(items) => items.iter().all(hashable),
        _ => false,
    }
}

fn update_dict(
    interp: &mut Interp<'_, '_>,
    dict: &Value,
    source: &Value,
    span: Span,
) -> EResult<()> {
    let pairs: Vec<(Value, Value)> = match source {
        Value::Dict(d) => d.0.borrow().clone(),
        other => {
            let mut pairs = Vec::new();
            for item in iterate(interp, other, span)? {
                let kv = iterate(interp, &item, span)?;
                if kv.len() != 2 {
                    return fail(
                        span,
                        LangErrorKind::Value(
                            "dictionary update sequence element has wrong length; 2 is required"
                                .into(),
                        ),
                    );
                }
                pairs.push((kv[0].clone(), kv[1].clone()));
            }
            pairs
        }
    };
    for (k, v) in pairs {
        set_item(interp, dict, k, v, span)?;
    }
    Ok(())
}

fn sort_values(
    interp: &mut Interp<'_, '_>,
    items: &mut [Value],
    key: Option<&Value>,
    reverse: bool,
    span: Span,
) -> EResult<()> {
    let mut keyed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let k = match key {
            Some(Value::None) | None => item.clone(),
            Some(f) => interp.call(f, vec![item.clone()], Vec::new(), span)?,
        };
        keyed.push((k, item.clone()));
    }
    // Insertion sort with fallible comparisons: stable, and configs sort short lists.
    interp.charge(keyed.len().saturating_mul(keyed.len()) / 8, span)?;
    for i in 1..keyed.len() {
        let mut j = i;
        while j > 0 {
            interp.step(span)?;
            let ord = order(interp, &keyed[j - 1].0, &keyed[j].0, span)?;
            let out_of_order = if reverse {
                ord == Ordering::Less
            } else {
                ord == Ordering::Greater
            };
            if !out_of_order {
                break;
            }
            keyed.swap(j - 1, j);
            j -= 1;
        }
    }
    for (slot, (_, v)) in items.iter_mut().zip(keyed) {
        *slot = v;
    }
    Ok(())
}

// ---------------------------------------------------------------- modules

fn call_module_function(
    interp: &mut Interp<'_, '_>,
    module: &str,
    function: &str,
    a: Args<'_>,
) -> EResult<Value> {
    let span = a.span;
    let host = interp.options.host;
    match (module, function) {
        ("commands", "getoutput") | ("commands", "getstatusoutput") => {
            a.expect(1, 1, &[])?;
            let command = a.req_str(0, "cmd")?;
            if !interp.options.allow_shell {
                return fail(span, LangErrorKind::ShellRefused(command.to_string()));
            }
            tracing::debug!(command = %command, "config runs a shell command");
            interp.shell_commands.push((command.to_string(), span));
            let timeout = interp.options.limits.shell_timeout;
            let (status, output) = match host.shell(&command, timeout) {
                Ok(r) => r,
                Err(ShellError::TimedOut) => {
                    return fail(
                        span,
                        LangErrorKind::ShellTimeout {
                            command: command.to_string(),
                            seconds: timeout.as_secs(),
                        },
                    );
                }
                Err(ShellError::Failed(reason)) => {
                    return fail(
                        span,
                        LangErrorKind::ShellFailed {
                            command: command.to_string(),
                            reason,
                        },
                    );
                }
            };
            let output = interp.new_str(output, span)?;
            if function == "getoutput" {
                Ok(output)
            } else {
                // Python 2 returned the raw wait status: exit code in the high byte.
                interp.new_tuple(vec![Value::Int(i64::from(status) << 8), output], span)
            }
        }
        ("os", "uname") => {
            a.expect(0, 0, &[])?;
            let mut parts = Vec::new();
            for p in host.uname() {
                parts.push(interp.new_str(p, span)?);
            }
            interp.new_tuple(parts, span)
        }
        ("os", "getenv") => {
            a.expect(1, 2, &[])?;
            let key = a.req_str(0, "key")?;
            match host.environ().into_iter().find(|(k, _)| **k == *key) {
                Some((_, v)) => interp.new_str(v, span),
                None => Ok(a.positional.get(1).cloned().unwrap_or(Value::None)),
            }
        }
        ("os.path", "exists") | ("os.path", "isfile") | ("os.path", "isdir") => {
            a.expect(1, 1, &[])?;
            let path = a.req_str(0, "path")?;
            let kind = host.path_kind(&path);
            Ok(Value::Bool(match function {
                "exists" => kind != PathKind::Missing,
                "isfile" => kind == PathKind::File,
                _ => kind == PathKind::Directory,
            }))
        }
        ("os.path", "join") => {
            a.expect(1, usize::MAX, &[])?;
            let mut out = String::new();
            for i in 0..a.positional.len() {
                let part = a.req_str(i, "")?;
                if part.starts_with('/') {
                    out.clear();
                } else if !out.is_empty() && !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(&part);
            }
            interp.new_str(out, span)
        }
        ("os.path", "basename") | ("os.path", "dirname") | ("os.path", "split") => {
            a.expect(1, 1, &[])?;
            let path = a.req_str(0, "path")?;
            let (head, tail) = match path.rfind('/') {
                Some(i) => {
                    let head = &path[..=i];
                    let trimmed = head.trim_end_matches('/');
                    (
                        if trimmed.is_empty() { head } else { trimmed },
                        &path[i + 1..],
                    )
                }
                None => ("", &path[..]),
            };
            match function {
                "basename" => interp.new_str(tail.to_string(), span),
                "dirname" => interp.new_str(head.to_string(), span),
                _ => {
                    let h = interp.new_str(head.to_string(), span)?;
                    let t = interp.new_str(tail.to_string(), span)?;
                    interp.new_tuple(vec![h, t], span)
                }
            }
        }
        ("os.path", "splitext") => {
            a.expect(1, 1, &[])?;
            let path = a.req_str(0, "path")?;
            let name_start = path.rfind('/').map_or(0, |i| i + 1);
            let name = &path[name_start..];
            let dot = name
                .trim_start_matches('.')
                .rfind('.')
                .map(|i| i + (name.len() - name.trim_start_matches('.').len()));
            let (root, ext) = match dot {
                Some(i) => (
                    path[..name_start + i].to_string(),
                    path[name_start + i..].to_string(),
                ),
                None => (path.to_string(), String::new()),
            };
            let r = interp.new_str(root, span)?;
            let e = interp.new_str(ext, span)?;
            interp.new_tuple(vec![r, e], span)
        }
        ("re", _) => call_re(interp, function, a),
        ("string", "join") => {
            a.expect(1, 2, &[])?;
            let sep = a.str_at(1, "sep")?.unwrap_or_else(|| Rc::from(" "));
            call_method(
                interp,
                &Value::Str(sep),
                "join",
                vec![a.positional[0].clone()],
                Vec::new(),
                span,
            )
        }
        ("string", "atoi") | ("string", "atol") => {
            a.expect(1, 2, &[])?;
            let s = a.req_str(0, "s")?;
            let base = a.int_at(1, "base")?.unwrap_or(10);
            parse_int_str(&s, base, span)
        }
        ("string", "atof") => call_builtin(interp, "float", a.positional, Vec::new(), span),
        ("string", method) => {
            // string.f(s, ...) is s.f(...).
            if a.positional.is_empty() {
                return type_error(span, format!("string.{method}() needs a string"));
            }
            let mut rest = a.positional;
            let receiver = rest.remove(0);
            let Value::Str(_) = receiver else {
                return type_error(
                    span,
                    format!(
                        "string.{method}() needs a string, not {}",
                        receiver.type_name()
                    ),
                );
            };
            let method = find_static(STR_METHODS, method).ok_or_else(|| {
                LangError::new(span, LangErrorKind::Attribute(format!("string.{method}")))
            })?;
            call_method(interp, &receiver, method, rest, a.keywords, span)
        }
        _ => fail(
            span,
            LangErrorKind::UnknownModuleAttr {
                module: module.to_string(),
                name: function.to_string(),
            },
        ),
    }
}

/// Python `re` flags to an inline-flag prefix.
fn regex_flags(flags: i64, span: Span) -> EResult<String> {
    let mut prefix = String::new();
    if flags & 2 != 0 {
        prefix.push('i');
    }
    if flags & 8 != 0 {
        prefix.push('m');
    }
    if flags & 16 != 0 {
        prefix.push('s');
    }
    if flags & !(2 | 8 | 16) != 0 {
        return fail(
            span,
            LangErrorKind::Unsupported(format!("re flags {flags:#x}")),
        );
    }
    Ok(if prefix.is_empty() {
        prefix
    } else {
        format!("(?{prefix})")
    })
}

fn compile_regex(
    interp: &mut Interp<'_, '_>,
    pattern: &Value,
    flags: i64,
    span: Span,
) -> EResult<Rc<Pattern>> {
    match pattern {
        Value::Pattern(p) if flags == 0 => Ok(p.clone()),
        Value::Str(source) => {
            interp.charge(source.len() * 64 + 1024, span)?;
            let full = format!("{}{}", regex_flags(flags, span)?, source);
            let regex = regex::RegexBuilder::new(&full)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .nest_limit(64)
                .build()
                .map_err(|e| {
                    let reason = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("invalid")
                        .trim()
                        .to_string();
                    LangError::new(
                        span,
                        LangErrorKind::BadRegex {
                            pattern: source.to_string(),
                            reason,
                        },
                    )
                })?;
            Ok(Rc::new(Pattern {
                source: source.to_string(),
                regex,
            }))
        }
        other => type_error(
            span,
            format!(
                "first argument must be a string or compiled pattern, not {}",
                other.type_name()
            ),
        ),
    }
}

fn match_value(
    interp: &mut Interp<'_, '_>,
    pattern: &Pattern,
    text: &str,
    anchored: bool,
    span: Span,
) -> EResult<Value> {
    interp.charge(text.len() + 64, span)?;
    let Some(caps) = pattern.regex.captures(text) else {
        return Ok(Value::None);
    };
    let Some(whole) = caps.get(0) else {
        return Ok(Value::None);
    };
    if anchored && whole.start() != 0 {
        return Ok(Value::None);
    }
    let groups = caps
        .iter()
        .map(|g| g.map(|m| m.as_str().to_string()))
        .collect();
    let start = text[..whole.start()].chars().count();
    let end = start + whole.as_str().chars().count();
    Ok(Value::Match(Rc::new(MatchObj { groups, start, end })))
}

fn call_re(interp: &mut Interp<'_, '_>, function: &str, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    match function {
        "compile" => {
            a.expect(1, 2, &["flags"])?;
            let flags = a.int_at(1, "flags")?.unwrap_or(0);
            Ok(Value::Pattern(compile_regex(
                interp,
                &a.positional[0],
                flags,
                span,
            )?))
        }
        "escape" => {
            a.expect(1, 1, &[])?;
            let s = a.req_str(0, "pattern")?;
            let mut out = String::with_capacity(s.len() * 2);
            for c in s.chars() {
                if !c.is_ascii_alphanumeric() && c != '_' {
                    out.push('\\');
                }
                out.push(c);
            }
            interp.new_str(out, span)
        }
        "search" | "match" | "findall" | "split" => {
            a.expect(2, 3, &["flags", "maxsplit"])?;
            let flags = if function == "split" {
                0
            } else {
                a.int_at(2, "flags")?.unwrap_or(0)
            };
            let pattern = compile_regex(interp, &a.positional[0], flags, span)?;
            let text = a.req_str(1, "string")?;
            let mut rest = vec![Value::Str(text)];
            if function == "split" {
                if let Some(m) = a.get(2, "maxsplit") {
                    rest.push(m.clone());
                }
            }
            pattern_method(interp, &pattern, function, rest, span)
        }
        "sub" => {
            a.expect(3, 4, &["count", "flags"])?;
            let flags = a
                .keywords
                .iter()
                .find(|(k, _)| k == "flags")
                .map_or(Ok(0), |(_, v)| match v {
                    Value::Int(i) => Ok(*i),
                    _ => type_error(span, "flags must be an integer"),
                })?;
            let pattern = compile_regex(interp, &a.positional[0], flags, span)?;
            let mut rest = vec![a.positional[1].clone(), a.positional[2].clone()];
            if let Some(c) = a.get(3, "count") {
                rest.push(c.clone());
            }
            pattern_method(interp, &pattern, "sub", rest, span)
        }
        _ => fail(
            span,
            LangErrorKind::UnknownModuleAttr {
                module: "re".into(),
                name: function.into(),
            },
        ),
    }
}

fn pattern_method(
    interp: &mut Interp<'_, '_>,
    pattern: &Pattern,
    method: &str,
    args: Vec<Value>,
    span: Span,
) -> EResult<Value> {
    let a = Args::new(method, args, Vec::new(), span);
    match method {
        "search" | "match" => {
            a.expect(1, 1, &[])?;
            let text = a.req_str(0, "string")?;
            match_value(interp, pattern, &text, method == "match", span)
        }
        "findall" => {
            a.expect(1, 1, &[])?;
            let text = a.req_str(0, "string")?;
            interp.charge(text.len() * 2 + 64, span)?;
            let group_count = pattern.regex.captures_len() - 1;
            let mut out = Vec::new();
            for caps in pattern.regex.captures_iter(&text) {
                interp.step(span)?;
                let text_of = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_string();
                let item = match group_count {
                    0 => interp.new_str(text_of(0), span)?,
                    1 => interp.new_str(text_of(1), span)?,
                    n => {
                        let mut parts = Vec::new();
                        for i in 1..=n {
                            parts.push(interp.new_str(text_of(i), span)?);
                        }
                        interp.new_tuple(parts, span)?
                    }
                };
                out.push(item);
            }
            interp.new_list(out, span)
        }
        "split" => {
            a.expect(1, 2, &[])?;
            let text = a.req_str(0, "string")?;
            if pattern.regex.captures_len() > 1 {
                return fail(
                    span,
                    LangErrorKind::Unsupported(
                        "re.split with capturing groups (use (?:...))".into(),
                    ),
                );
            }
            let maxsplit = a.int_at(1, "maxsplit")?.unwrap_or(0);
            interp.charge(text.len() * 2 + 64, span)?;
            let parts: Vec<String> = if maxsplit > 0 {
                pattern
                    .regex
                    .splitn(&text, usize_arg(maxsplit, span, "maxsplit")? + 1)
                    .map(str::to_string)
                    .collect()
            } else {
                pattern.regex.split(&text).map(str::to_string).collect()
            };
            let mut out = Vec::new();
            for p in parts {
                out.push(interp.new_str(p, span)?);
            }
            interp.new_list(out, span)
        }
        "sub" => {
            a.expect(2, 3, &[])?;
            let Value::Str(replacement) = &a.positional[0] else {
                return fail(
                    span,
                    LangErrorKind::Unsupported("re.sub with a function as replacement".into()),
                );
            };
            let text = a.req_str(1, "string")?;
            let count = usize_arg(a.int_at(2, "count")?.unwrap_or(0), span, "count")?;
            let template = python_replacement_to_rust(replacement, span)?;
            let result = pattern
                .regex
                .replacen(&text, count, template.as_str())
                .into_owned();
            interp.charge(result.len(), span)?;
            interp.new_str(result, span)
        }
        _ => fail(
            span,
            LangErrorKind::Attribute(format!("pattern has no method {method}")),
        ),
    }
}

/// `\1`, `\g<name>` → `${1}`, `${name}`; a literal `$` → `$$`.
fn python_replacement_to_rust(replacement: &str, span: Span) -> EResult<String> {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut num = d.to_string();
                    if let Some(&e) = chars.peek() {
                        if e.is_ascii_digit() {
                            num.push(e);
                            chars.next();
                        }
                    }
                    let _ = write!(out, "${{{num}}}");
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return fail(
                            span,
                            LangErrorKind::Value("bad group reference in replacement".into()),
                        );
                    }
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    let _ = write!(out, "${{{name}}}");
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- methods

pub fn call_method(
    interp: &mut Interp<'_, '_>,
    receiver: &Value,
    name: &str,
    positional: Vec<Value>,
    keywords: Vec<(String, Value)>,
    span: Span,
) -> EResult<Value> {
    let a = Args::new(name, positional, keywords, span);
    match receiver {
        Value::Str(s) => str_method(interp, s, a),
        Value::List(_) => list_method(interp, receiver, a),
        Value::Dict(_) => dict_method(interp, receiver, a),
        Value::Match(m) => match_method(interp, m, a),
        Value::Pattern(p) => {
            a.expect(1, 3, &[])?;
            pattern_method(interp, p, name, a.positional, span)
        }
        Value::XmVars => xm_vars_method(interp, a),
        other => type_error(
            span,
            format!("'{}' object has no method {name}", other.type_name()),
        ),
    }
}

fn strip_chars(s: &str, chars: Option<&str>, left: bool, right: bool) -> String {
    let matches = |c: char| match chars {
        None => c.is_whitespace(),
        Some(set) => set.contains(c),
    };
    let mut t = s;
    if left {
        t = t.trim_start_matches(matches);
    }
    if right {
        t = t.trim_end_matches(matches);
    }
    t.to_string()
}

fn char_slice(s: &str, start: usize, end: usize) -> String {
    s.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

fn str_method(interp: &mut Interp<'_, '_>, s: &Rc<str>, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    let name = a.function;
    interp.scan(s.len(), span)?;
    match name {
        "join" => {
            a.expect(1, 1, &[])?;
            let items = iterate(interp, &a.positional[0], span)?;
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Str(p) => parts.push(p.clone()),
                    other => {
                        return type_error(
                            span,
                            format!(
                                "sequence item {i}: expected string, {} found",
                                other.type_name()
                            ),
                        );
                    }
                }
            }
            let total: usize = parts.iter().map(|p| p.len()).sum::<usize>() + s.len() * parts.len();
            interp.charge(total, span)?;
            let joined = parts.iter().map(|p| &**p).collect::<Vec<_>>().join(s);
            interp.new_str(joined, span)
        }
        "split" | "rsplit" => {
            a.expect(0, 2, &["sep", "maxsplit"])?;
            let sep = a.str_at(0, "sep")?;
            let maxsplit = a.int_at(1, "maxsplit")?.unwrap_or(-1);
            let limit = if maxsplit < 0 {
                usize::MAX
            } else {
                maxsplit as usize
            };
            interp.charge(s.len() * 2 + 64, span)?;
            let parts: Vec<String> = match sep.as_deref() {
                Some("") => return fail(span, LangErrorKind::Value("empty separator".into())),
                Some(sep) => {
                    if name == "split" {
                        s.splitn(limit.saturating_add(1), sep)
                            .map(str::to_string)
                            .collect()
                    } else {
                        let mut v: Vec<String> = s
                            .rsplitn(limit.saturating_add(1), sep)
                            .map(str::to_string)
                            .collect();
                        v.reverse();
                        v
                    }
                }
                None => split_whitespace(s, limit, name == "rsplit"),
            };
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                out.push(interp.new_str(p, span)?);
            }
            interp.new_list(out, span)
        }
        "splitlines" => {
            a.expect(0, 1, &[])?;
            let mut out = Vec::new();
            for line in s.lines() {
                out.push(interp.new_str(line.to_string(), span)?);
            }
            interp.new_list(out, span)
        }
        "strip" | "lstrip" | "rstrip" => {
            a.expect(0, 1, &[])?;
            let chars = a.str_at(0, "chars")?;
            let out = strip_chars(s, chars.as_deref(), name != "rstrip", name != "lstrip");
            interp.new_str(out, span)
        }
        "replace" => {
            a.expect(2, 3, &[])?;
            let old = a.req_str(0, "old")?;
            let new = a.req_str(1, "new")?;
            let count = a.int_at(2, "count")?.unwrap_or(-1);
            let occurrences = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(&*old).count()
            };
            interp.charge(s.len() + occurrences.saturating_mul(new.len()), span)?;
            let out = if count < 0 {
                s.replace(&*old, &new)
            } else {
                s.replacen(&*old, &new, count as usize)
            };
            interp.new_str(out, span)
        }
        "startswith" | "endswith" => {
            a.expect(1, 1, &[])?;
            let candidates = match &a.positional[0] {
                Value::Str(p) => vec![p.clone()],
                Value::Tuple(items) => {
                    let mut v = Vec::new();
                    for item in items.iter() {
                        match item {
                            Value::Str(p) => v.push(p.clone()),
                            other => {
                                return type_error(
                                    span,
                                    format!(
                                        "{name}() tuple items must be strings, not {}",
                                        other.type_name()
                                    ),
                                )
                            }
                        }
                    }
                    v
                }
                other => {
                    return type_error(
                        span,
                        format!(
                            "{name}() argument must be a string or tuple, not {}",
                            other.type_name()
                        ),
                    )
                }
            };
            let hit = candidates.iter().any(|p| {
                if name == "startswith" {
                    s.starts_with(&**p)
                } else {
                    s.ends_with(&**p)
                }
            });
            Ok(Value::Bool(hit))
        }
        "lower" | "upper" | "capitalize" | "title" | "swapcase" => {
            a.expect(0, 0, &[])?;
            let out = match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                "capitalize" => {
                    let mut chars = s.chars();
                    match chars.next() {
                        Some(first) => first
                            .to_uppercase()
                            .chain(chars.flat_map(char::to_lowercase))
                            .collect(),
                        None => String::new(),
                    }
                }
                "title" => {
                    let mut out = String::new();
                    let mut previous_cased = false;
                    for c in s.chars() {
                        if previous_cased {
                            out.extend(c.to_lowercase());
                        } else {
                            out.extend(c.to_uppercase());
                        }
                        previous_cased = c.is_alphabetic();
                    }
                    out
                }
                _ => s
                    .chars()
                    .flat_map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().collect::<Vec<_>>()
                        } else {
                            c.to_uppercase().collect()
                        }
                    })
                    .collect(),
            };
            interp.new_str(out, span)
        }
        "find" | "rfind" | "index" | "rindex" | "count" => {
            a.expect(1, 1, &[])?;
            let needle = a.req_str(0, "sub")?;
            if name == "count" {
                let n = if needle.is_empty() {
                    s.chars().count() + 1
                } else {
                    s.matches(&*needle).count()
                };
                return Ok(Value::Int(n as i64));
            }
            let found = if name.contains('r') && name != "count" && name.starts_with('r') {
                s.rfind(&*needle)
            } else {
                s.find(&*needle)
            };
            match found {
                Some(byte) => Ok(Value::Int(s[..byte].chars().count() as i64)),
                None if name.ends_with("find") => Ok(Value::Int(-1)),
                None => fail(span, LangErrorKind::Value("substring not found".into())),
            }
        }
        "isdigit" | "isalpha" | "isalnum" | "isspace" | "islower" | "isupper" => {
            a.expect(0, 0, &[])?;
            let result = !s.is_empty()
                && match name {
                    "isdigit" => s.chars().all(|c| c.is_ascii_digit()),
                    "isalpha" => s.chars().all(char::is_alphabetic),
                    "isalnum" => s.chars().all(char::is_alphanumeric),
                    "isspace" => s.chars().all(char::is_whitespace),
                    "islower" => {
                        s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)
                    }
                    _ => s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase),
                };
            Ok(Value::Bool(result))
        }
        "zfill" | "ljust" | "rjust" | "center" => {
            a.expect(1, 2, &[])?;
            let width = usize_arg(a.int_at(0, "width")?.unwrap_or(0), span, "width").unwrap_or(0);
            let fill = match a.str_at(1, "fillchar")? {
                Some(f) if f.chars().count() == 1 => f.chars().next().unwrap_or(' '),
                Some(_) => {
                    return type_error(
                        span,
                        "the fill character must be exactly one character long",
                    )
                }
                None => {
                    if name == "zfill" {
                        '0'
                    } else {
                        ' '
                    }
                }
            };
            let len = s.chars().count();
            let pad = width.saturating_sub(len);
            interp.charge(pad.saturating_mul(4) + s.len(), span)?;
            let fill_str = |n: usize| std::iter::repeat(fill).take(n).collect::<String>();
            let out = match name {
                "ljust" => format!("{s}{}", fill_str(pad)),
                "rjust" => format!("{}{s}", fill_str(pad)),
                "center" => {
                    let left = pad / 2 + (pad & width & 1);
                    format!("{}{s}{}", fill_str(left), fill_str(pad - left))
                }
                _ => match s.strip_prefix(['-', '+']) {
                    Some(rest) => format!("{}{}{rest}", &s[..1], fill_str(pad)),
                    None => format!("{}{s}", fill_str(pad)),
                },
            };
            interp.new_str(out, span)
        }
        "partition" | "rpartition" => {
            a.expect(1, 1, &[])?;
            let sep = a.req_str(0, "sep")?;
            if sep.is_empty() {
                return fail(span, LangErrorKind::Value("empty separator".into()));
            }
            let found = if name == "partition" {
                s.find(&*sep)
            } else {
                s.rfind(&*sep)
            };
            let (x, y, z) = match found {
                Some(i) => (
                    s[..i].to_string(),
                    sep.to_string(),
                    s[i + sep.len()..].to_string(),
                ),
                None if name == "partition" => (s.to_string(), String::new(), String::new()),
                None => (String::new(), String::new(), s.to_string()),
            };
            let parts = vec![
                interp.new_str(x, span)?,
                interp.new_str(y, span)?,
                interp.new_str(z, span)?,
            ];
            interp.new_tuple(parts, span)
        }
        "encode" | "decode" => {
            a.expect(0, 2, &[])?;
            let encoding = a
                .str_at(0, "encoding")?
                .map(|e| e.to_ascii_lowercase().replace(['-', '_'], ""));
            match encoding.as_deref() {
                None | Some("utf8") | Some("ascii") | Some("latin1") => Ok(Value::Str(s.clone())),
                Some(other) => fail(
                    span,
                    LangErrorKind::Unsupported(format!("{name}('{other}')")),
                ),
            }
        }
        "format" => {
            let out = str_format(interp, s, &a)?;
            interp.new_str(out, span)
        }
        _ => fail(
            span,
            LangErrorKind::Attribute(format!("'str' object has no attribute '{name}'")),
        ),
    }
}

fn split_whitespace(s: &str, limit: usize, from_right: bool) -> Vec<String> {
    if !from_right {
        let mut out = Vec::new();
        let mut rest = s.trim_start();
        while !rest.is_empty() {
            if out.len() == limit {
                out.push(rest.to_string());
                return out;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        out
    } else {
        let mut out = Vec::new();
        let mut rest = s.trim_end();
        while !rest.is_empty() {
            if out.len() == limit {
                out.push(rest.to_string());
                break;
            }
            let start = rest.rfind(char::is_whitespace).map_or(0, |i| {
                i + rest[i..].chars().next().map_or(1, char::len_utf8)
            });
            out.push(rest[start..].to_string());
            rest = rest[..start].trim_end();
        }
        out.reverse();
        out
    }
}

/// `'{0} {name}'.format(...)`: fields by position, index or name; no format specs.
fn str_format(interp: &mut Interp<'_, '_>, template: &str, a: &Args<'_>) -> EResult<String> {
    let span = a.span;
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut auto_index = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let field: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let (field, conversion) = match field.split_once('!') {
                    Some((f, conv)) => (f.to_string(), Some(conv.to_string())),
                    None => (field, None),
                };
                if field.contains(':') || field.contains('.') || field.contains('[') {
                    return fail(
                        span,
                        LangErrorKind::Unsupported(format!(
                            "format field {{{field}}} (only {{}}, {{0}} and {{name}})"
                        )),
                    );
                }
                let value = if field.is_empty() {
                    auto_index += 1;
                    a.positional.get(auto_index - 1)
                } else if let Ok(i) = field.parse::<usize>() {
                    a.positional.get(i)
                } else {
                    a.keywords.iter().find(|(k, _)| *k == field).map(|(_, v)| v)
                };
                let Some(value) = value else {
                    return fail(
                        span,
                        LangErrorKind::Index(format!("format field {{{field}}} has no argument")),
                    );
                };
                let text = match conversion.as_deref() {
                    Some("r") => interp.repr(value, span)?,
                    None | Some("s") => interp.to_str(value, span)?,
                    Some(other) => {
                        return fail(
                            span,
                            LangErrorKind::Value(format!("unknown conversion !{other}")),
                        )
                    }
                };
                interp.charge(text.len(), span)?;
                out.push_str(&text);
            }
            '}' => {
                return fail(
                    span,
                    LangErrorKind::Value("single '}' encountered in format string".into()),
                )
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn list_method(interp: &mut Interp<'_, '_>, receiver: &Value, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    let Value::List(list) = receiver else {
        return type_error(span, "not a list");
    };
    let len = list.0.borrow().len();
    interp.scan(len, span)?;
    match a.function {
        "append" => {
            a.expect(1, 1, &[])?;
            interp.charge(16, span)?;
            list.0.borrow_mut().push(a.positional[0].clone());
            Ok(Value::None)
        }
        "extend" => {
            a.expect(1, 1, &[])?;
            let items = iterate(interp, &a.positional[0], span)?;
            interp.charge(items.len() * 16, span)?;
            list.0.borrow_mut().extend(items);
            Ok(Value::None)
        }
        "insert" => {
            a.expect(2, 2, &[])?;
            let len = list.0.borrow().len() as i64;
            let mut i = a.int_at(0, "index")?.unwrap_or(0);
            if i < 0 {
                i = (i + len).max(0);
            }
            let i = i.min(len) as usize;
            interp.charge(16, span)?;
            list.0.borrow_mut().insert(i, a.positional[1].clone());
            Ok(Value::None)
        }
        "pop" => {
            a.expect(0, 1, &[])?;
            let len = list.0.borrow().len() as i64;
            let i = a.int_at(0, "index")?.unwrap_or(-1);
            let index = if i < 0 { i + len } else { i };
            if index < 0 || index >= len {
                return fail(span, LangErrorKind::Index("pop index out of range".into()));
            }
            Ok(list.0.borrow_mut().remove(index as usize))
        }
        "remove" | "index" | "count" => {
            a.expect(1, 1, &[])?;
            let items = list.0.borrow().clone();
            let mut positions = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if interp.equals(item, &a.positional[0], span)? {
                    positions.push(i);
                }
            }
            match a.function {
                "count" => Ok(Value::Int(positions.len() as i64)),
                _ => match positions.first() {
                    None => fail(
                        span,
                        LangErrorKind::Value(format!("list.{}(x): x not in list", a.function)),
                    ),
                    Some(&i) if a.function == "index" => Ok(Value::Int(i as i64)),
                    Some(&i) => {
                        list.0.borrow_mut().remove(i);
                        Ok(Value::None)
                    }
                },
            }
        }
        "sort" => {
            a.expect(0, 0, &["reverse", "key"])?;
            let mut items = list.0.borrow().clone();
            let key = a
                .keywords
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone());
            let reverse = a.keywords.iter().any(|(k, v)| k == "reverse" && v.truthy());
            sort_values(interp, &mut items, key.as_ref(), reverse, span)?;
            *list.0.borrow_mut() = items;
            Ok(Value::None)
        }
        "reverse" => {
            a.expect(0, 0, &[])?;
            list.0.borrow_mut().reverse();
            Ok(Value::None)
        }
        other => fail(
            span,
            LangErrorKind::Attribute(format!("'list' object has no attribute '{other}'")),
        ),
    }
}

fn dict_find(
    interp: &mut Interp<'_, '_>,
    dict: &Value,
    key: &Value,
    span: Span,
) -> EResult<Option<usize>> {
    let Value::Dict(d) = dict else {
        return Ok(None);
    };
    let keys: Vec<Value> = d.0.borrow().iter().map(|(k, _)| k.clone()).collect();
    interp.scan(keys.len(), span)?;
    for (i, k) in keys.iter().enumerate() {
        if interp.equals(k, key, span)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn dict_method(interp: &mut Interp<'_, '_>, receiver: &Value, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    let Value::Dict(dict) = receiver else {
        return type_error(span, "not a dict");
    };
    interp.step(span)?;
    match a.function {
        "get" | "has_key" | "setdefault" | "pop" => {
            a.expect(1, 2, &[])?;
            let key = &a.positional[0];
            let found = dict_find(interp, receiver, key, span)?;
            match (a.function, found) {
                ("has_key", f) => Ok(Value::Bool(f.is_some())),
                ("pop", Some(i)) => Ok(dict.0.borrow_mut().remove(i).1),
                ("pop", None) => a.positional.get(1).cloned().ok_or_else(|| {
                    LangError::new(span, LangErrorKind::Key(key.repr().unwrap_or_default()))
                }),
                (_, Some(i)) => Ok(dict.0.borrow()[i].1.clone()),
                ("setdefault", None) => {
                    let v = a.positional.get(1).cloned().unwrap_or(Value::None);
                    set_item(interp, receiver, key.clone(), v.clone(), span)?;
                    Ok(v)
                }
                (_, None) => Ok(a.positional.get(1).cloned().unwrap_or(Value::None)),
            }
        }
        "keys" | "values" | "items" | "iterkeys" | "itervalues" | "iteritems" => {
            a.expect(0, 0, &[])?;
            let pairs = dict.0.borrow().clone();
            let mut out = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                out.push(match a.function.trim_start_matches("iter") {
                    "keys" => k,
                    "values" => v,
                    _ => interp.new_tuple(vec![k, v], span)?,
                });
            }
            interp.new_list(out, span)
        }
        "update" => {
            a.expect(0, 1, &[])?;
            if let Some(source) = a.positional.first() {
                update_dict(interp, receiver, source, span)?;
            }
            for (k, v) in &a.keywords {
                let key = interp.new_str(k.clone(), span)?;
                set_item(interp, receiver, key, v.clone(), span)?;
            }
            Ok(Value::None)
        }
        "copy" => {
            a.expect(0, 0, &[])?;
            let pairs = dict.0.borrow().clone();
            interp.new_dict(pairs, span)
        }
        "clear" => {
            a.expect(0, 0, &[])?;
            dict.0.borrow_mut().clear();
            Ok(Value::None)
        }
        other => fail(
            span,
            LangErrorKind::Attribute(format!("'dict' object has no attribute '{other}'")),
        ),
    }
}

fn match_method(interp: &mut Interp<'_, '_>, m: &MatchObj, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    let group = |interp: &mut Interp<'_, '_>, i: i64| -> EResult<Value> {
        match usize::try_from(i).ok().and_then(|i| m.groups.get(i)) {
            Some(Some(text)) => interp.new_str(text.clone(), span),
            Some(None) => Ok(Value::None),
            None => fail(span, LangErrorKind::Index("no such group".into())),
        }
    };
    match a.function {
        "group" => {
            a.expect(0, usize::MAX, &[])?;
            if a.positional.len() <= 1 {
                let i = a.int_at(0, "")?.unwrap_or(0);
                return group(interp, i);
            }
            let mut out = Vec::new();
            for i in 0..a.positional.len() {
                let n = a.int_at(i, "")?.unwrap_or(0);
                out.push(group(interp, n)?);
            }
            interp.new_tuple(out, span)
        }
        "groups" => {
            a.expect(0, 1, &[])?;
            let mut out = Vec::new();
            for i in 1..m.groups.len() {
                out.push(group(interp, i as i64)?);
            }
            interp.new_tuple(out, span)
        }
        "start" => Ok(Value::Int(m.start as i64)),
        "end" => Ok(Value::Int(m.end as i64)),
        "span" => interp.new_tuple(
            vec![Value::Int(m.start as i64), Value::Int(m.end as i64)],
            span,
        ),
        other => fail(
            span,
            LangErrorKind::Attribute(format!("match object has no attribute '{other}'")),
        ),
    }
}

/// `xm_vars.var(name, use=..., check=fn)` and `xm_vars.check()`, as xend's `help.Vars`.
fn xm_vars_method(interp: &mut Interp<'_, '_>, a: Args<'_>) -> EResult<Value> {
    let span = a.span;
    match a.function {
        "var" => {
            a.expect(1, 3, &["use", "check"])?;
            let name = a.req_str(0, "name")?.to_string();
            let usage = a.str_at(1, "use")?.map(|u| u.to_string());
            let check = a
                .get(2, "check")
                .filter(|v| !matches!(v, Value::None))
                .cloned();
            interp.xm_vars.retain(|d| d.name != name);
            interp.xm_vars.push(XmVarDecl { name, usage, check });
            Ok(Value::None)
        }
        "check" => {
            a.expect(0, 0, &[])?;
            let declarations: Vec<(String, Option<String>, Option<Value>)> = interp
                .xm_vars
                .iter()
                .map(|d| (d.name.clone(), d.usage.clone(), d.check.clone()))
                .collect();
            for (name, usage, check) in declarations {
                let Some(check) = check else { continue };
                let given = interp.globals.get(&name).cloned().unwrap_or(Value::None);
                let missing = matches!(given, Value::None);
                let name_value = interp.new_str(name.clone(), span)?;
                match interp.call(&check, vec![name_value, given.clone()], Vec::new(), span) {
                    Ok(value) => {
                        interp.globals.insert(name.clone(), value);
                        interp.checked_vars.insert(name);
                    }
                    Err(e) if e.kind.python_class().is_some() => {
                        let reason = if missing {
                            format!("not set (give it on the command line: {name}=VALUE)")
                        } else {
                            format!(
                                "{} rejected by its check ({})",
                                given.repr().unwrap_or_default(),
                                e.kind
                            )
                        };
                        let usage = usage.map(|u| format!("; {name}: {u}")).unwrap_or_default();
                        return fail(
                            span,
                            LangErrorKind::XmVar {
                                name,
                                reason,
                                usage,
                            },
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(Value::None)
        }
        other => fail(
            span,
            LangErrorKind::Attribute(format!("xm_vars has no method '{other}'")),
        ),
    }
}

// ---------------------------------------------------------------- containers

pub fn iterate(interp: &mut Interp<'_, '_>, value: &Value, span: Span) -> EResult<Vec<Value>> {
    let items = match value {
        Value::List(l) => l.0.borrow().clone(),
        Value::Tuple(t) => t.to_vec(),
        Value::Dict(d) => d.0.borrow().iter().map(|(k, _)| k.clone()).collect(),
        Value::Str(s) => {
            interp.charge(s.len() * 24, span)?;
            s.chars().map(|c| Value::str(c.to_string())).collect()
        }
        other => {
            return type_error(
                span,
                format!("'{}' object is not iterable", other.type_name()),
            )
        }
    };
    interp.charge(items.len() * 16, span)?;
    Ok(items)
}

pub fn contains(
    interp: &mut Interp<'_, '_>,
    container: &Value,
    item: &Value,
    span: Span,
) -> EResult<bool> {
    match container {
        Value::Str(s) => match item {
            Value::Str(needle) => {
                interp.scan(s.len(), span)?;
                Ok(s.contains(&**needle))
            }
            other => type_error(
                span,
                format!(
                    "'in <string>' requires string as left operand, not {}",
                    other.type_name()
                ),
            ),
        },
        Value::List(_) | Value::Tuple(_) | Value::Dict(_) => {
            let items = match container {
                Value::List(l) => l.0.borrow().clone(),
                Value::Tuple(t) => t.to_vec(),
                Value::Dict(d) => d.0.borrow().iter().map(|(k, _)| k.clone()).collect(),
                _ => Vec::new(),
            };
            interp.scan(items.len(), span)?;
            for candidate in &items {
                if interp.equals(candidate, item, span)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        other => type_error(
            span,
            format!("argument of type '{}' is not iterable", other.type_name()),
        ),
    }
}

fn normalise_index(index: &Value, len: usize, span: Span, what: &str) -> EResult<usize> {
    let i = match index {
        Value::Int(i) => *i,
        Value::Bool(b) => i64::from(*b),
        other => {
            return type_error(
                span,
                format!("{what} indices must be integers, not {}", other.type_name()),
            )
        }
    };
    let len = len as i64;
    let real = if i < 0 { i + len } else { i };
    if real < 0 || real >= len {
        return fail(
            span,
            LangErrorKind::Index(format!("{what} index out of range")),
        );
    }
    Ok(real as usize)
}

pub fn get_item(
    interp: &mut Interp<'_, '_>,
    value: &Value,
    index: &Value,
    span: Span,
) -> EResult<Value> {
    match value {
        Value::List(l) => {
            let items = l.0.borrow();
            let i = normalise_index(index, items.len(), span, "list")?;
            Ok(items[i].clone())
        }
        Value::Tuple(t) => {
            let i = normalise_index(index, t.len(), span, "tuple")?;
            Ok(t[i].clone())
        }
        Value::Str(s) => {
            interp.scan(s.len(), span)?;
            let len = s.chars().count();
            let i = normalise_index(index, len, span, "string")?;
            let c = s.chars().nth(i).unwrap_or(' ');
            interp.new_str(c.to_string(), span)
        }
        Value::Dict(d) => {
            let found = dict_find(interp, value, index, span)?;
            match found {
                Some(i) => Ok(d.0.borrow()[i].1.clone()),
                None => fail(span, LangErrorKind::Key(index.repr().unwrap_or_default())),
            }
        }
        other => type_error(
            span,
            format!("'{}' object is not subscriptable", other.type_name()),
        ),
    }
}

pub fn set_item(
    interp: &mut Interp<'_, '_>,
    container: &Value,
    index: Value,
    value: Value,
    span: Span,
) -> EResult<()> {
    match container {
        Value::List(l) => {
            let len = l.0.borrow().len();
            let i = normalise_index(&index, len, span, "list assignment")?;
            l.0.borrow_mut()[i] = value;
            Ok(())
        }
        Value::Dict(d) => {
            if !hashable(&index) {
                return type_error(span, format!("unhashable type: '{}'", index.type_name()));
            }
            match dict_find(interp, container, &index, span)? {
                Some(i) => d.0.borrow_mut()[i].1 = value,
                None => {
                    interp.charge(32, span)?;
                    d.0.borrow_mut().push((index, value));
                }
            }
            Ok(())
        }
        other => type_error(
            span,
            format!(
                "'{}' object does not support item assignment",
                other.type_name()
            ),
        ),
    }
}

pub fn del_item(
    interp: &mut Interp<'_, '_>,
    container: &Value,
    index: &Value,
    span: Span,
) -> EResult<()> {
    match container {
        Value::List(l) => {
            let len = l.0.borrow().len();
            let i = normalise_index(index, len, span, "list assignment")?;
            l.0.borrow_mut().remove(i);
            Ok(())
        }
        Value::Dict(d) => match dict_find(interp, container, index, span)? {
            Some(i) => {
                d.0.borrow_mut().remove(i);
                Ok(())
            }
            None => fail(span, LangErrorKind::Key(index.repr().unwrap_or_default())),
        },
        other => type_error(
            span,
            format!(
                "'{}' object does not support item deletion",
                other.type_name()
            ),
        ),
    }
}

fn slice_indices(len: usize, lower: Option<i64>, upper: Option<i64>, step: i64) -> Vec<usize> {
    let len = len as i64;
    let clamp = |v: i64, low: i64, high: i64| v.max(low).min(high);
    let adjust = |v: i64| if v < 0 { v + len } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let start = clamp(lower.map_or(0, adjust), 0, len);
        let stop = clamp(upper.map_or(len, adjust), 0, len);
        let mut i = start;
        while i < stop {
            out.push(i as usize);
            match i.checked_add(step) {
                Some(next) => i = next,
                None => break,
            }
        }
    } else {
        let start = clamp(lower.map_or(len - 1, adjust), -1, len - 1);
        let stop = clamp(
            upper.map_or(-1, |v| if v < 0 { (v + len).max(-1) } else { v }),
            -1,
            len - 1,
        );
        let mut i = start;
        while i > stop {
            out.push(i as usize);
            match i.checked_add(step) {
                Some(next) => i = next,
                None => break,
            }
        }
    }
    out
}

pub fn slice(
    interp: &mut Interp<'_, '_>,
    value: &Value,
    lower: Option<i64>,
    upper: Option<i64>,
    step: Option<i64>,
    span: Span,
) -> EResult<Value> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return fail(
            span,
            LangErrorKind::Value("slice step cannot be zero".into()),
        );
    }
    match value {
        Value::Str(s) => {
            interp.scan(s.len(), span)?;
            if step == 1 {
                let len = s.chars().count();
                let idx = slice_indices(len, lower, upper, 1);
                let out = match (idx.first(), idx.last()) {
                    (Some(&a), Some(&b)) => char_slice(s, a, b + 1),
                    _ => String::new(),
                };
                return interp.new_str(out, span);
            }
            let chars: Vec<char> = s.chars().collect();
            let out: String = slice_indices(chars.len(), lower, upper, step)
                .into_iter()
                .map(|i| chars[i])
                .collect();
            interp.new_str(out, span)
        }
        Value::List(l) => {
            let items = l.0.borrow().clone();
            let out = slice_indices(items.len(), lower, upper, step)
                .into_iter()
                .map(|i| items[i].clone())
                .collect();
            interp.new_list(out, span)
        }
        Value::Tuple(t) => {
            let out = slice_indices(t.len(), lower, upper, step)
                .into_iter()
                .map(|i| t[i].clone())
                .collect();
            interp.new_tuple(out, span)
        }
        other => type_error(
            span,
            format!("'{}' object is not sliceable", other.type_name()),
        ),
    }
}

// ---------------------------------------------------------------- operators

pub fn order(interp: &mut Interp<'_, '_>, a: &Value, b: &Value, span: Span) -> EResult<Ordering> {
    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
        return Ok(match (x, y) {
            (Number::Int(x), Number::Int(y)) => x.cmp(&y),
            (x, y) => x
                .to_f64()
                .partial_cmp(&y.to_f64())
                .unwrap_or(Ordering::Equal),
        });
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::List(_), Value::List(_)) | (Value::Tuple(_), Value::Tuple(_)) => {
            let xs = iterate(interp, a, span)?;
            let ys = iterate(interp, b, span)?;
            for (x, y) in xs.iter().zip(&ys) {
                interp.step(span)?;
                if !interp.equals(x, y, span)? {
                    return order(interp, x, y, span);
                }
            }
            Ok(xs.len().cmp(&ys.len()))
        }
        (Value::None, Value::None) => Ok(Ordering::Equal),
        _ => type_error(
            span,
            format!(
                "cannot order {} and {} (Python 2 allowed it, but the result was arbitrary)",
                a.type_name(),
                b.type_name()
            ),
        ),
    }
}

fn overflow(span: Span, what: &str) -> LangError {
    LangError::new(
        span,
        LangErrorKind::Overflow(format!(
            "{what} does not fit in 64 bits (xm-rs has no long integers)"
        )),
    )
}

fn repeat(interp: &mut Interp<'_, '_>, seq: &Value, times: i64, span: Span) -> EResult<Value> {
    let n = usize::try_from(times.max(0)).unwrap_or(0);
    match seq {
        Value::Str(s) => {
            interp.charge(s.len().saturating_mul(n), span)?;
            interp.new_str(s.repeat(n), span)
        }
        Value::List(_) | Value::Tuple(_) => {
            let items = iterate(interp, seq, span)?;
            let n = if items.is_empty() { 0 } else { n };
            interp.charge(items.len().saturating_mul(n).saturating_mul(16), span)?;
            let mut out = Vec::with_capacity(items.len() * n);
            for _ in 0..n {
                out.extend(items.iter().cloned());
            }
            if matches!(seq, Value::List(_)) {
                interp.new_list(out, span)
            } else {
                interp.new_tuple(out, span)
            }
        }
        _ => type_error(span, "can't multiply sequence by non-int"),
    }
}

pub fn binary(
    interp: &mut Interp<'_, '_>,
    op: BinOp,
    a: &Value,
    b: &Value,
    span: Span,
) -> EResult<Value> {
    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
        return numeric(op, x, y, span);
    }
    match (op, a, b) {
        (BinOp::Add, Value::Str(x), Value::Str(y)) => {
            interp.charge(x.len() + y.len(), span)?;
            interp.new_str(format!("{x}{y}"), span)
        }
        (BinOp::Add, Value::List(x), Value::List(y)) => {
            let mut items = x.0.borrow().clone();
            items.extend(y.0.borrow().iter().cloned());
            interp.new_list(items, span)
        }
        (BinOp::Add, Value::Tuple(x), Value::Tuple(y)) => {
            let mut items = x.to_vec();
            items.extend(y.iter().cloned());
            interp.new_tuple(items, span)
        }
        (BinOp::Mul, seq @ (Value::Str(_) | Value::List(_) | Value::Tuple(_)), Value::Int(n))
        | (BinOp::Mul, Value::Int(n), seq @ (Value::Str(_) | Value::List(_) | Value::Tuple(_))) => {
            repeat(interp, seq, *n, span)
        }
        (BinOp::Mod, Value::Str(format), args) => {
            let out = percent_format(interp, format, args, span)?;
            interp.new_str(out, span)
        }
        (BinOp::Add, Value::Str(_), other) | (BinOp::Add, other, Value::Str(_)) => type_error(
            span,
            format!(
                "cannot concatenate 'str' and '{}' objects (convert with str() first)",
                other.type_name()
            ),
        ),
        _ => type_error(
            span,
            format!(
                "unsupported operand type(s) for {}: '{}' and '{}'",
                op.symbol(),
                a.type_name(),
                b.type_name()
            ),
        ),
    }
}

fn numeric(op: BinOp, x: Number, y: Number, span: Span) -> EResult<Value> {
    let zero = || {
        LangError::new(
            span,
            LangErrorKind::ZeroDivision("division or modulo by zero".into()),
        )
    };
    if let (Number::Int(a), Number::Int(b)) = (x, y) {
        let result = match op {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            // Python 2: int / int floors.
            BinOp::Div | BinOp::FloorDiv => {
                if b == 0 {
                    return Err(zero());
                }
                a.checked_div_euclid(b).map(|_| {
                    let q = a / b;
                    if (a % b != 0) && ((a < 0) != (b < 0)) {
                        q - 1
                    } else {
                        q
                    }
                })
            }
            BinOp::Mod => {
                if b == 0 {
                    return Err(zero());
                }
                a.checked_rem(b).map(|r| {
                    if r != 0 && ((r < 0) != (b < 0)) {
                        r + b
                    } else {
                        r
                    }
                })
            }
            BinOp::Pow => {
                if b < 0 {
                    return Ok(Value::Float((a as f64).powf(b as f64)));
                }
                u32::try_from(b).ok().and_then(|e| a.checked_pow(e))
            }
            BinOp::BitOr => Some(a | b),
            BinOp::BitAnd => Some(a & b),
            BinOp::BitXor => Some(a ^ b),
            BinOp::Shl => {
                if b < 0 {
                    return Err(LangError::new(
                        span,
                        LangErrorKind::Value("negative shift count".into()),
                    ));
                }
                u32::try_from(b)
                    .ok()
                    .filter(|s| *s < 63)
                    .and_then(|s| a.checked_mul(1i64 << s))
            }
            BinOp::Shr => {
                if b < 0 {
                    return Err(LangError::new(
                        span,
                        LangErrorKind::Value("negative shift count".into()),
                    ));
                }
                Some(a >> b.min(63))
            }
        };
        return result
            .map(Value::Int)
            .ok_or_else(|| overflow(span, &format!("{a} {} {b}", op.symbol())));
    }
    let (a, b) = (x.to_f64(), y.to_f64());
    let result = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                return Err(zero());
            }
            a / b
        }
        BinOp::FloorDiv => {
            if b == 0.0 {
                return Err(zero());
            }
            (a / b).floor()
        }
        BinOp::Mod => {
            if b == 0.0 {
                return Err(zero());
            }
            let r = a % b;
            if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                r + b
            } else {
                r
            }
        }
        BinOp::Pow => a.powf(b),
        _ => {
            return type_error(
                span,
                format!("unsupported operand type(s) for {}: 'float'", op.symbol()),
            )
        }
    };
    Ok(Value::Float(result))
}

/// Python 2 `format % args`.
pub fn percent_format(
    interp: &mut Interp<'_, '_>,
    format: &str,
    args: &Value,
    span: Span,
) -> EResult<String> {
    let (positional, mapping): (Vec<Value>, Option<&Value>) = match args {
        Value::Tuple(items) => (items.to_vec(), None),
        Value::Dict(_) => (vec![args.clone()], Some(args)),
        other => (vec![other.clone()], None),
    };
    let mut next = 0usize;
    let mut used_mapping = false;
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let not_enough = || {
        LangError::new(
            span,
            LangErrorKind::Type("not enough arguments for format string".into()),
        )
    };
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key: Option<String> = None;
        if chars.get(i) == Some(&'(') {
            let end = chars[i..]
                .iter()
                .position(|c| *c == ')')
                .map(|p| p + i)
                .ok_or_else(|| {
                    LangError::new(span, LangErrorKind::Value("incomplete format key".into()))
                })?;
            key = Some(chars[i + 1..end].iter().collect());
            i = end + 1;
        }
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        let mut space = false;
        let mut alternate = false;
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => alternate = true,
                _ => break,
            }
            i += 1;
        }
        let take_number = |i: &mut usize, next: &mut usize| -> EResult<Option<usize>> {
            if chars.get(*i) == Some(&'*') {
                *i += 1;
                let v = positional.get(*next).cloned().ok_or_else(not_enough)?;
                *next += 1;
                return match v {
                    Value::Int(n) => Ok(Some(usize::try_from(n.clamp(0, 10_000)).unwrap_or(0))),
                    _ => type_error(span, "* wants int"),
                };
            }
            let start = *i;
            while matches!(chars.get(*i), Some(c) if c.is_ascii_digit()) {
                *i += 1;
            }
            if *i == start {
                return Ok(None);
            }
            let digits: String = chars[start..*i].iter().collect();
            Ok(Some(
                digits.parse::<usize>().unwrap_or(usize::MAX).min(10_000),
            ))
        };
        let width = take_number(&mut i, &mut next)?;
        let precision = if chars.get(i) == Some(&'.') {
            i += 1;
            Some(take_number(&mut i, &mut next)?.unwrap_or(0))
        } else {
            None
        };
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conversion) = chars.get(i) else {
            return fail(span, LangErrorKind::Value("incomplete format".into()));
        };
        i += 1;
        if conversion == '%' {
            out.push('%');
            continue;
        }
        let value = match &key {
            Some(k) => {
                let Some(map) = mapping else {
                    return type_error(span, "format requires a mapping");
                };
                used_mapping = true;
                let key_value = Value::str(k.as_str());
                get_item(interp, map, &key_value, span)?
            }
            None => {
                let v = positional.get(next).cloned().ok_or_else(not_enough)?;
                next += 1;
                v
            }
        };
        let numeric_sign = |negative: bool| -> &'static str {
            if negative {
                "-"
            } else if plus {
                "+"
            } else if space {
                " "
            } else {
                ""
            }
        };
        let (body, is_number, sign): (String, bool, &str) = match conversion {
            's' | 'r' => {
                let mut text = if conversion == 's' {
                    interp.to_str(&value, span)?
                } else {
                    interp.repr(&value, span)?
                };
                if let Some(p) = precision {
                    text = text.chars().take(p).collect();
                }
                (text, false, "")
            }
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                let n = match &value {
                    Value::Int(n) => *n,
                    Value::Bool(b) => i64::from(*b),
                    Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => f.trunc() as i64,
                    other => {
                        return type_error(
                            span,
                            format!(
                                "%{conversion} format: a number is required, not {}",
                                other.type_name()
                            ),
                        );
                    }
                };
                let magnitude = n.unsigned_abs();
                let mut digits = match conversion {
                    'x' => format!("{magnitude:x}"),
                    'X' => format!("{magnitude:X}"),
                    'o' => format!("{magnitude:o}"),
                    _ => magnitude.to_string(),
                };
                if let Some(p) = precision {
                    if digits.len() < p {
                        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                    }
                }
                if alternate {
                    digits = match conversion {
                        'x' => format!("0x{digits}"),
                        'X' => format!("0X{digits}"),
                        'o' if !digits.starts_with('0') => format!("0{digits}"),
                        _ => digits,
                    };
                }
                (digits, true, numeric_sign(n < 0))
            }
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
                let f = match value.as_number() {
                    Some(n) => n.to_f64(),
                    None => {
                        return type_error(
                            span,
                            format!("float argument required, not {}", value.type_name()),
                        );
                    }
                };
                let p = precision.unwrap_or(6).min(100);
                let text = format_float_spec(f.abs(), conversion, p, alternate);
                (text, true, numeric_sign(f.is_sign_negative() && f != 0.0))
            }
            'c' => {
                let text = match &value {
                    Value::Int(n) if (0..128).contains(n) => char::from(*n as u8).to_string(),
                    Value::Str(s) if s.chars().count() == 1 => s.to_string(),
                    _ => return type_error(span, "%c requires an ASCII int or a single character"),
                };
                (text, false, "")
            }
            other => {
                return fail(
                    span,
                    LangErrorKind::Value(format!("unsupported format character '{other}'")),
                );
            }
        };
        let len = sign.len() + body.chars().count();
        let pad = width.unwrap_or(0).saturating_sub(len);
        interp.charge(pad + body.len(), span)?;
        if left {
            out.push_str(sign);
            out.push_str(&body);
            out.push_str(&" ".repeat(pad));
        } else if zero && is_number {
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(&body);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(sign);
            out.push_str(&body);
        }
    }
    if mapping.is_none() && next < positional.len() {
        return type_error(span, "not all arguments converted during string formatting");
    }
    let _ = used_mapping;
    Ok(out)
}

fn format_float_spec(f: f64, conversion: char, precision: usize, alternate: bool) -> String {
    if !f.is_finite() {
        let s = if f.is_nan() { "nan" } else { "inf" };
        return if conversion.is_ascii_uppercase() {
            s.to_uppercase()
        } else {
            s.to_string()
        };
    }
    let exp_form = |p: usize, upper: bool| {
        let s = format!("{f:.p$e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (exp_sign, exp_digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let e = if upper { 'E' } else { 'e' };
        format!("{mantissa}{e}{exp_sign}{exp_digits:0>2}")
    };
    match conversion {
        'f' | 'F' => format!("{f:.precision$}"),
        'e' | 'E' => exp_form(precision, conversion == 'E'),
        _ => {
            let p = precision.max(1);
            let exponent = if f == 0.0 {
                0
            } else {
                f.abs().log10().floor() as i64
            };
            let text = if exponent < -4 || exponent >= p as i64 {
                exp_form(p - 1, conversion == 'G')
            } else {
                let decimals = usize::try_from(p as i64 - 1 - exponent).unwrap_or(0);
                format!("{f:.decimals$}")
            };
            if alternate {
                return text;
            }
            // %g drops trailing zeros.
            match text.split_once(['e', 'E']) {
                Some((mantissa, exp)) => {
                    let m = if mantissa.contains('.') {
                        mantissa.trim_end_matches('0').trim_end_matches('.')
                    } else {
                        mantissa
                    };
                    let e = if conversion == 'G' { 'E' } else { 'e' };
                    format!("{m}{e}{exp}")
                }
                None if text.contains('.') => {
                    text.trim_end_matches('0').trim_end_matches('.').to_string()
                }
                None => text,
            }
        }
    }
}
