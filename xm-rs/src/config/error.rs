//! Errors of the config language (lexing, parsing, evaluating) and of loading a config.

use std::path::PathBuf;

use super::source::{Diagnostic, Span};

/// A config-language error at a place in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct LangError {
    pub span: Span,
    pub kind: LangErrorKind,
}

impl LangError {
    pub fn new(span: Span, kind: LangErrorKind) -> Self {
        LangError { span, kind }
    }
}

/// What went wrong. Each message is written for the admin reading `xm create` output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LangErrorKind {
    // --- lexing ---
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("string is not closed before the end of the line (use triple quotes for multi-line strings)")]
    UnterminatedString,
    #[error("triple-quoted string is not closed before the end of the file")]
    UnterminatedTripleString,
    #[error("invalid escape {0:?} in string")]
    BadEscape(String),
    #[error("invalid number literal {0:?}")]
    BadNumber(String),
    #[error("integer literal {0} is too large (limit is 64-bit signed)")]
    IntegerTooLarge(String),
    #[error("indentation does not match any outer block")]
    BadDedent,
    #[error("unexpected indentation")]
    UnexpectedIndent,
    #[error("expected an indented block")]
    ExpectedIndent,
    #[error("mixing tabs and spaces in indentation is ambiguous; use spaces")]
    AmbiguousTabs,
    #[error("closing {found:?} does not match opening {expected:?}")]
    MismatchedBracket { expected: char, found: char },
    #[error("unmatched closing {0:?}")]
    UnmatchedClose(char),
    #[error("{0:?} is not closed before the end of the file")]
    UnclosedBracket(char),
    #[error("backslash line continuation must be the last character on the line")]
    BadContinuation,

    // --- parsing ---
    #[error("expected {expected}, found {found}")]
    Expected { expected: String, found: String },
    #[error("{0} is outside the config language subset xm-rs accepts")]
    Unsupported(String),
    #[error("cannot assign to {0}")]
    BadAssignTarget(String),
    #[error("expression nested too deeply (limit {0})")]
    TooDeep(usize),
    #[error("`{0}` outside a function")]
    OutsideFunction(&'static str),
    #[error("`{0}` outside a loop")]
    OutsideLoop(&'static str),

    // --- evaluating ---
    #[error("name {0:?} is not defined")]
    UndefinedName(String),
    #[error("cannot import module {0:?}: only commands, os, os.path, sys, re and string are available to configs")]
    UnknownModule(String),
    #[error("module {module} has no attribute {name:?} available to configs")]
    UnknownModuleAttr { module: String, name: String },
    #[error("TypeError: {0}")]
    Type(String),
    #[error("ValueError: {0}")]
    Value(String),
    #[error("IndexError: {0}")]
    Index(String),
    #[error("KeyError: {0}")]
    Key(String),
    #[error("ZeroDivisionError: {0}")]
    ZeroDivision(String),
    #[error("OverflowError: {0}")]
    Overflow(String),
    #[error("AttributeError: {0}")]
    Attribute(String),
    #[error("the config raised {0}")]
    Raised(String),
    #[error("config ran more than {0} steps; is there an endless loop?")]
    StepLimit(u64),
    #[error("config allocated more than {0} bytes; refusing to go on")]
    MemoryLimit(usize),
    #[error("function calls nested deeper than {0}; is there endless recursion?")]
    RecursionLimit(usize),
    #[error("value nested too deeply (limit {0})")]
    ValueTooDeep(usize),
    #[error("shell commands are disabled (--no-shell): refusing to run {0:?}")]
    ShellRefused(String),
    #[error("command {command:?} failed to run: {reason}")]
    ShellFailed { command: String, reason: String },
    #[error("command {command:?} did not finish within {seconds} s")]
    ShellTimeout { command: String, seconds: u64 },
    #[error("xm_vars: invalid value for variable {name:?}: {reason}{usage}")]
    XmVar {
        name: String,
        reason: String,
        usage: String,
    },
    #[error("bad regular expression {pattern:?}: {reason}")]
    BadRegex { pattern: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl LangErrorKind {
    /// The Python exception class a config can catch with `except`, if any.
    /// Limits and refusals are not catchable: a config must not be able to hide them.
    pub fn python_class(&self) -> Option<&'static str> {
        Some(match self {
            LangErrorKind::Type(_) => "TypeError",
            LangErrorKind::Value(_) => "ValueError",
            LangErrorKind::Index(_) => "IndexError",
            LangErrorKind::Key(_) => "KeyError",
            LangErrorKind::ZeroDivision(_) => "ZeroDivisionError",
            LangErrorKind::Overflow(_) => "OverflowError",
            LangErrorKind::Attribute(_) => "AttributeError",
            LangErrorKind::UndefinedName(_) => "NameError",
            LangErrorKind::UnknownModule(_) => "ImportError",
            LangErrorKind::Raised(name) => return known_exception(name),
            _ => return None,
        })
    }
}

fn known_exception(raised: &str) -> Option<&'static str> {
    let class = raised.split('(').next().unwrap_or(raised).trim();
    crate::config::eval::EXCEPTION_NAMES
        .iter()
        .copied()
        .find(|name| *name == class)
}

/// Everything that can stop a config from loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A located problem in the config text (syntax, evaluation or validation).
    #[error("{0}")]
    Located(Box<Diagnostic>),
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {name:?} not found; looked in: {}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("config file {} is not UTF-8 text (byte offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("config file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "command-line variable {0:?} is not of the form NAME=VALUE with NAME a Python identifier"
    )]
    BadVariable(String),
    /// The config ran but does not describe a valid domain.
    #[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
}

impl ConfigError {
    pub fn located(diagnostic: Diagnostic) -> Self {
        ConfigError::Located(Box::new(diagnostic))
    }
}
