//! A safe, bounded evaluator for the Python-2 subset that xm config files use.
//!
//! Every statement and expression costs a step, every string/list built is charged against
//! a byte budget, calls nest to a fixed depth: no config can hang or exhaust the toolstack.
//! Anything outside the subset is a located error.

use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::ast::*;
use super::builtins;
use super::error::{LangError, LangErrorKind};
use super::host::Host;
use super::source::Span;
use super::value::{ConfigValue, DictObj, Function, ListObj, Value};

/// Exception classes a config may name in `raise` and `except`.
pub const EXCEPTION_NAMES: &[&str] = &[
    "Exception",
    "StandardError",
    "ValueError",
    "TypeError",
    "KeyError",
    "IndexError",
    "LookupError",
    "ArithmeticError",
    "ZeroDivisionError",
    "OverflowError",
    "AttributeError",
    "NameError",
    "ImportError",
    "RuntimeError",
    "OSError",
    "IOError",
    "EnvironmentError",
    "AssertionError",
    "NotImplementedError",
];

/// Nested statements + expressions + calls, all together; keeps the native stack of the
/// evaluator under about a megabyte even in debug builds.
pub const MAX_EVAL_DEPTH: usize = 200;

/// Resource limits for one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Statements + expressions + loop iterations.
    pub max_steps: u64,
    /// Bytes of strings/containers created over the whole run.
    pub max_bytes: usize,
    /// Nested user function calls.
    pub max_call_depth: usize,
    /// Per `commands.getoutput` call.
    pub shell_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 1_000_000,
            max_bytes: 64 << 20,
            max_call_depth: 20,
            shell_timeout: Duration::from_secs(10),
        }
    }
}

/// How to run a config.
pub struct EvalOptions<'h> {
    pub limits: Limits,
    /// `commands.getoutput` and friends; refused when false (`--no-shell`).
    pub allow_shell: bool,
    pub host: &'h dyn Host,
    /// `NAME=VALUE` from the command line, set before the file runs.
    pub variables: Vec<(String, String)>,
    /// The config's path (`xm_file`, `sys.argv[0]`).
    pub config_path: String,
}

impl std::fmt::Debug for EvalOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalOptions")
            .field("limits", &self.limits)
            .field("allow_shell", &self.allow_shell)
            .field("variables", &self.variables)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// A top-level variable the config left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: ConfigValue,
    /// Where the file last assigned it at top level (None: only set on the command line).
    pub assigned_at: Option<Span>,
    /// Whether the config itself read it (helper variables like `krn_vers`).
    pub read_by_config: bool,
    /// Set by `NAME=VALUE` on the command line (and not reset through xm_vars).
    pub from_command_line: bool,
}

/// What running a config produced.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// In order of first assignment.
    pub variables: Vec<Variable>,
    /// Output of `print` statements.
    pub printed: Vec<String>,
    /// Shell commands the config ran, with where.
    pub shell_commands: Vec<(String, Span)>,
    /// Whether anything beyond xl's `KEY = value` / `KEY += value` syntax was used.
    pub uses_python: bool,
    pub steps: u64,
}

impl Evaluation {
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }
}

/// Parses and runs a config.
///
/// The evaluator runs on its own thread with a [`EVAL_STACK_BYTES`] stack, so the nesting
/// limits hold whatever stack the caller has (test threads have 2 MiB, debug frames are big).
pub fn evaluate(text: &str, options: &EvalOptions<'_>) -> Result<Evaluation, LangError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("xm-config-eval".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(scope, || {
                let program = super::parser::parse(text)?;
                run(&program, options)
            });
        match worker {
            Ok(handle) => match handle.join() {
                Ok(result) => result,
                // A panic is a bug; let it propagate (and the fuzzer see it).
                Err(payload) => std::panic::resume_unwind(payload),
            },
            Err(e) => Err(LangError::new(
                Span::default(),
                LangErrorKind::Internal(format!("cannot start the evaluator thread: {e}")),
            )),
        }
    })
}

/// Stack of the evaluator thread (reserved, touched only as deep as a config goes).
pub const EVAL_STACK_BYTES: usize = 64 << 20;

/// Runs an already parsed config on the current thread's stack (see [`evaluate`]).
fn run(program: &[Stmt], options: &EvalOptions<'_>) -> Result<Evaluation, LangError> {
    let mut interp = Interp::new(options);
    // What xend's create.py defined before running the file.
    interp
        .globals
        .insert("sys".into(), Value::Module(super::value::Module::Sys));
    interp
        .globals
        .insert("os".into(), Value::Module(super::value::Module::Os));
    interp.globals.insert("xm_vars".into(), Value::XmVars);
    interp.globals.insert("xm_help".into(), Value::Int(0));
    interp
        .globals
        .insert("xm_file".into(), Value::str(options.config_path.as_str()));
    for (name, value) in &options.variables {
        interp.charge(value.len(), Span::default())?;
        interp
            .globals
            .insert(name.clone(), Value::str(value.as_str()));
    }
    interp.uses_python = !is_xl_subset(program);
    for stmt in program {
        match interp.exec(stmt)? {
            Flow::Normal => {}
            // The parser refuses these outside loops and functions.
            Flow::Break | Flow::Continue | Flow::Return(_) => break,
        }
    }
    interp.finish()
}

/// xl accepts only `NAME = value` / `NAME += value` with strings, numbers and (nested) lists.
fn is_xl_subset(program: &[Stmt]) -> bool {
    fn literal(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Str(_) | ExprKind::Int(_) | ExprKind::Float(_) => true,
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => matches!(operand.kind, ExprKind::Int(_) | ExprKind::Float(_)),
            ExprKind::List(items) => items.iter().all(literal),
            _ => false,
        }
    }
    program.iter().all(|s| match &s.kind {
        StmtKind::Assign { targets, value } => {
            targets.len() == 1 && matches!(targets[0], Target::Name { .. }) && literal(value)
        }
        StmtKind::AugAssign {
            target: Target::Name { .. },
            op: BinOp::Add,
            value,
        } => literal(value),
        _ => false,
    })
}

pub(crate) enum Flow {
    Normal,
    Break,
    Continue,
    Return(Value),
}

struct Frame {
    locals: HashMap<String, Value>,
    globals_declared: HashSet<String>,
}

/// A declaration made with `xm_vars.var(...)`.
pub(crate) struct XmVarDecl {
    pub name: String,
    pub usage: Option<String>,
    pub check: Option<Value>,
}

pub(crate) struct Interp<'o, 'h> {
    pub options: &'o EvalOptions<'h>,
    pub globals: HashMap<String, Value>,
    frames: Vec<Frame>,
    steps: u64,
    bytes: usize,
    /// Current recursion depth of exec/eval.
    depth: usize,
    /// Top-level names in order of first assignment, and the span of the last one.
    assigned: Vec<String>,
    assigned_at: HashMap<String, Span>,
    reads: HashSet<String>,
    pub xm_vars: Vec<XmVarDecl>,
    pub checked_vars: HashSet<String>,
    pub printed: Vec<String>,
    pub shell_commands: Vec<(String, Span)>,
    uses_python: bool,
    pub environ_cache: Option<Value>,
    /// Every container made, so cycles (`a.append(a)`) can be broken when the run ends.
    lists: Vec<Weak<ListObj>>,
    dicts: Vec<Weak<DictObj>>,
}

impl Drop for Interp<'_, '_> {
    fn drop(&mut self) {
        self.globals.clear();
        self.frames.clear();
        self.environ_cache = None;
        for x in self.xm_vars.drain(..) {
            drop(x.check);
        }
        for list in self.lists.drain(..) {
            if let Some(list) = list.upgrade() {
                let items = std::mem::take(&mut *list.0.borrow_mut());
                drop(items);
            }
        }
        for dict in self.dicts.drain(..) {
            if let Some(dict) = dict.upgrade() {
                let items = std::mem::take(&mut *dict.0.borrow_mut());
                drop(items);
            }
        }
    }
}

pub(crate) type EResult<T> = Result<T, LangError>;

pub(crate) fn fail<T>(span: Span, kind: LangErrorKind) -> EResult<T> {
    Err(LangError::new(span, kind))
}

pub(crate) fn type_error<T>(span: Span, message: impl Into<String>) -> EResult<T> {
    fail(span, LangErrorKind::Type(message.into()))
}

impl<'o, 'h> Interp<'o, 'h> {
    fn new(options: &'o EvalOptions<'h>) -> Self {
        Interp {
            options,
            globals: HashMap::new(),
            frames: Vec::new(),
            steps: 0,
            bytes: 0,
            depth: 0,
            assigned: Vec::new(),
            assigned_at: HashMap::new(),
            reads: HashSet::new(),
            xm_vars: Vec::new(),
            checked_vars: HashSet::new(),
            printed: Vec::new(),
            shell_commands: Vec::new(),
            uses_python: false,
            environ_cache: None,
            lists: Vec::new(),
            dicts: Vec::new(),
        }
    }

    fn finish(&mut self) -> EResult<Evaluation> {
        let mut variables = Vec::new();
        let mut names: Vec<String> = self.assigned.clone();
        for (name, _) in &self.options.variables {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        for name in names {
            let Some(value) = self.globals.get(&name) else {
                continue;
            };
            let from_command_line = self.options.variables.iter().any(|(n, _)| *n == name)
                && !self.checked_vars.contains(&name);
            // xm: command-line variables win over the file's own assignment, unless an
            // xm_vars check converted them (then the checked value stands).
            let value = if from_command_line {
                let given = self
                    .options
                    .variables
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone());
                ConfigValue::Str(given.unwrap_or_default())
            } else {
                match ConfigValue::from_value(value) {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            };
            variables.push(Variable {
                read_by_config: self.reads.contains(&name),
                assigned_at: self.assigned_at.get(&name).copied(),
                from_command_line,
                name,
                value,
            });
        }
        Ok(Evaluation {
            variables,
            printed: std::mem::take(&mut self.printed),
            shell_commands: std::mem::take(&mut self.shell_commands),
            uses_python: self.uses_python,
            steps: self.steps,
        })
    }

    // ------------------------------------------------------------ limits

    pub fn step(&mut self, span: Span) -> EResult<()> {
        self.steps += 1;
        if self.steps > self.options.limits.max_steps {
            return fail(
                span,
                LangErrorKind::StepLimit(self.options.limits.max_steps),
            );
        }
        Ok(())
    }

    /// Charges steps for work proportional to `units` (scans that allocate nothing, such
    /// as `in`, `find` or dict lookups), so big values cannot make cheap-looking steps slow.
    pub fn scan(&mut self, units: usize, span: Span) -> EResult<()> {
        self.steps = self.steps.saturating_add(units as u64 / 32);
        self.step(span)
    }

    /// Charges `bytes` against the allocation budget before the allocation happens.
    pub fn charge(&mut self, bytes: usize, span: Span) -> EResult<()> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.options.limits.max_bytes {
            return fail(
                span,
                LangErrorKind::MemoryLimit(self.options.limits.max_bytes),
            );
        }
        Ok(())
    }

    pub fn new_str(&mut self, s: String, span: Span) -> EResult<Value> {
        self.charge(s.len() + 16, span)?;
        Ok(Value::str(s))
    }

    pub fn new_list(&mut self, items: Vec<Value>, span: Span) -> EResult<Value> {
        self.charge(items.len() * 16 + 32, span)?;
        let list = Rc::new(ListObj(std::cell::RefCell::new(items)));
        self.lists.push(Rc::downgrade(&list));
        Ok(Value::List(list))
    }

    pub fn new_tuple(&mut self, items: Vec<Value>, span: Span) -> EResult<Value> {
        self.charge(items.len() * 16 + 32, span)?;
        Ok(Value::tuple(items))
    }

    pub fn new_dict(&mut self, items: Vec<(Value, Value)>, span: Span) -> EResult<Value> {
        self.charge(items.len() * 32 + 32, span)?;
        let dict = Rc::new(DictObj(std::cell::RefCell::new(items)));
        self.dicts.push(Rc::downgrade(&dict));
        Ok(Value::Dict(dict))
    }

    pub fn repr(&self, value: &Value, span: Span) -> EResult<String> {
        value.repr().ok_or_else(|| {
            LangError::new(
                span,
                LangErrorKind::ValueTooDeep(super::value::MAX_VALUE_DEPTH),
            )
        })
    }

    pub fn to_str(&self, value: &Value, span: Span) -> EResult<String> {
        value.to_str().ok_or_else(|| {
            LangError::new(
                span,
                LangErrorKind::ValueTooDeep(super::value::MAX_VALUE_DEPTH),
            )
        })
    }

    pub fn equals(&mut self, a: &Value, b: &Value, span: Span) -> EResult<bool> {
        let size = |v: &Value| match v {
            Value::Str(s) => s.len(),
            Value::List(l) => l.0.borrow().len(),
            Value::Tuple(t) => t.len(),
            Value::Dict(d) => d.0.borrow().len(),
            _ => 0,
        };
        let cost = size(a).min(size(b));
        if cost > 32 {
            self.scan(cost, span)?;
        }
        a.equals(b, 0).ok_or_else(|| {
            LangError::new(
                span,
                LangErrorKind::ValueTooDeep(super::value::MAX_VALUE_DEPTH),
            )
        })
    }

    // ------------------------------------------------------------ names

    fn lookup(&mut self, name: &str, span: Span) -> EResult<Value> {
        if let Some(frame) = self.frames.last() {
            if !frame.globals_declared.contains(name) {
                if let Some(v) = frame.locals.get(name) {
                    return Ok(v.clone());
                }
            }
        }
        if !self.reads.contains(name) {
            self.reads.insert(name.to_string());
        }
        if let Some(v) = self.globals.get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = builtins::builtin(name) {
            return Ok(v);
        }
        fail(span, LangErrorKind::UndefinedName(name.to_string()))
    }

    fn store(&mut self, name: &str, value: Value, span: Span) {
        if let Some(frame) = self.frames.last_mut() {
            if !frame.globals_declared.contains(name) {
                frame.locals.insert(name.to_string(), value);
                return;
            }
        } else {
            self.assigned_at.insert(name.to_string(), span);
        }
        if !self.assigned.iter().any(|n| n == name) {
            self.assigned.push(name.to_string());
        }
        self.globals.insert(name.to_string(), value);
    }

    fn assign(&mut self, target: &Target, value: Value) -> EResult<()> {
        match target {
            Target::Name { name, span } => {
                self.store(name, value, *span);
                Ok(())
            }
            Target::Index {
                value: container,
                index,
                span,
            } => {
                let container = self.eval(container)?;
                let index = self.eval(index)?;
                builtins::set_item(self, &container, index, value, *span)
            }
            Target::Tuple { items, span } => {
                let values = builtins::iterate(self, &value, *span)?;
                if values.len() != items.len() {
                    return fail(
                        *span,
                        LangErrorKind::Value(format!(
                            "need {} values to unpack, got {}",
                            items.len(),
                            values.len()
                        )),
                    );
                }
                for (target, value) in items.iter().zip(values) {
                    self.assign(target, value)?;
                }
                Ok(())
            }
        }
    }

    // ------------------------------------------------------------ statements

    fn exec_block(&mut self, body: &[Stmt]) -> EResult<Flow> {
        for stmt in body {
            match self.exec(stmt)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    /// Runs `body` one recursion level deeper; all recursion (statements, expressions,
    /// calls) shares one depth budget so the native stack stays bounded.
    fn nested<T>(&mut self, span: Span, body: impl FnOnce(&mut Self) -> EResult<T>) -> EResult<T> {
        if self.depth >= MAX_EVAL_DEPTH {
            return fail(span, LangErrorKind::TooDeep(MAX_EVAL_DEPTH));
        }
        self.depth += 1;
        let result = body(self);
        self.depth -= 1;
        result
    }

    pub(crate) fn exec(&mut self, stmt: &Stmt) -> EResult<Flow> {
        self.nested(stmt.span, |this| this.exec_inner(stmt))
    }

    fn exec_inner(&mut self, stmt: &Stmt) -> EResult<Flow> {
        self.step(stmt.span)?;
        match &stmt.kind {
            StmtKind::Expr(e) => {
                self.eval(e)?;
            }
            StmtKind::Assign { targets, value } => {
                let value = self.eval(value)?;
                for target in targets {
                    self.assign(target, value.clone())?;
                }
            }
            StmtKind::AugAssign { target, op, value } => {
                let current = match target {
                    Target::Name { name, span } => self.lookup(name, *span)?,
                    Target::Index {
                        value: c,
                        index,
                        span,
                    } => {
                        let c = self.eval(c)?;
                        let i = self.eval(index)?;
                        builtins::get_item(self, &c, &i, *span)?
                    }
                    Target::Tuple { span, .. } => {
                        return fail(*span, LangErrorKind::BadAssignTarget("a tuple".into()));
                    }
                };
                let rhs = self.eval(value)?;
                // `list += x` extends in place, as Python does.
                let result = match (&current, op) {
                    (Value::List(list), BinOp::Add) => {
                        let extra = builtins::iterate(self, &rhs, value.span)?;
                        self.charge(extra.len() * 16, value.span)?;
                        list.0.borrow_mut().extend(extra);
                        current.clone()
                    }
                    _ => self.binary(*op, &current, &rhs, stmt.span)?,
                };
                self.assign(target, result)?;
            }
            StmtKind::Import(names) => {
                for (module, alias, span) in names {
                    let value = builtins::import(module, *span)?;
                    match alias {
                        Some(alias) => self.store(alias, value, *span),
                        // `import os.path` binds `os`.
                        None => {
                            let head = module.split('.').next().unwrap_or(module);
                            let head_value = builtins::import(head, *span)?;
                            self.store(head, head_value, *span);
                        }
                    }
                }
            }
            StmtKind::FromImport { module, names } => {
                let module_value = builtins::import(module, stmt.span)?;
                for (name, alias, span) in names {
                    if name == "*" {
                        return fail(
                            *span,
                            LangErrorKind::Unsupported("`from ... import *`".into()),
                        );
                    }
                    let value = builtins::get_attr(self, &module_value, name, *span)?;
                    self.store(alias.as_deref().unwrap_or(name), value, *span);
                }
            }
            StmtKind::If { branches, orelse } => {
                for (condition, body) in branches {
                    if self.eval(condition)?.truthy() {
                        return self.exec_block(body);
                    }
                }
                return self.exec_block(orelse);
            }
            StmtKind::For {
                target,
                iter,
                body,
                orelse,
            } => {
                let iterable = self.eval(iter)?;
                let items = builtins::iterate(self, &iterable, iter.span)?;
                for item in items {
                    self.step(stmt.span)?;
                    self.assign(target, item)?;
                    match self.exec_block(body)? {
                        Flow::Break => return Ok(Flow::Normal),
                        Flow::Continue | Flow::Normal => {}
                        ret @ Flow::Return(_) => return Ok(ret),
                    }
                }
                return self.exec_block(orelse);
            }
            StmtKind::While {
                condition,
                body,
                orelse,
            } => {
                while self.eval(condition)?.truthy() {
                    self.step(stmt.span)?;
                    match self.exec_block(body)? {
                        Flow::Break => return Ok(Flow::Normal),
                        Flow::Continue | Flow::Normal => {}
                        ret @ Flow::Return(_) => return Ok(ret),
                    }
                }
                return self.exec_block(orelse);
            }
            StmtKind::Def(def) => {
                let mut defaults = Vec::with_capacity(def.params.len());
                for (_, default) in &def.params {
                    defaults.push(match default {
                        Some(e) => Some(self.eval(e)?),
                        None => None,
                    });
                }
                let function = Value::Function(Rc::new(Function {
                    def: def.clone(),
                    defaults,
                }));
                self.store(&def.name, function, def.span);
            }
            StmtKind::Return(value) => {
                let value = match value {
                    Some(e) => self.eval(e)?,
                    None => Value::None,
                };
                return Ok(Flow::Return(value));
            }
            StmtKind::Pass => {}
            StmtKind::Global(names) => {
                if let Some(frame) = self.frames.last_mut() {
                    frame.globals_declared.extend(names.iter().cloned());
                }
            }
            StmtKind::Break => return Ok(Flow::Break),
            StmtKind::Continue => return Ok(Flow::Continue),
            StmtKind::Print(items) => {
                let mut parts = Vec::new();
                for item in items {
                    let value = self.eval(item)?;
                    parts.push(self.to_str(&value, item.span)?);
                }
                let line = parts.join(" ");
                self.charge(line.len(), stmt.span)?;
                self.printed.push(line);
            }
            StmtKind::Raise(value) => {
                let description = match value {
                    None => "an exception".to_string(),
                    Some(e) => match self.eval(e)? {
                        Value::Builtin(name) if EXCEPTION_NAMES.contains(&name) => name.to_string(),
                        Value::Exception(exc) => {
                            format!("{}({})", exc.0, super::value::repr_str(&exc.1))
                        }
                        other => {
                            return type_error(
                                e.span,
                                format!(
                                    "exceptions must be exception classes, not {}",
                                    other.type_name()
                                ),
                            )
                        }
                    },
                };
                return fail(stmt.span, LangErrorKind::Raised(description));
            }
            StmtKind::Try {
                body,
                handlers,
                orelse,
            } => {
                let error = match self.exec_block(body) {
                    Ok(Flow::Normal) => return self.exec_block(orelse),
                    Ok(flow) => return Ok(flow),
                    Err(e) => e,
                };
                let Some(class) = error.kind.python_class() else {
                    return Err(error);
                };
                for handler in handlers {
                    if self.handler_matches(handler, class)? {
                        if let Some(bind) = &handler.bind {
                            let exc = Value::Exception(Rc::new((class, error.kind.to_string())));
                            self.store(bind, exc, stmt.span);
                        }
                        return self.exec_block(&handler.body);
                    }
                }
                return Err(error);
            }
            StmtKind::Assert { condition, message } => {
                if !self.eval(condition)?.truthy() {
                    let text = match message {
                        Some(m) => {
                            let v = self.eval(m)?;
                            format!(
                                "AssertionError({})",
                                super::value::repr_str(&self.to_str(&v, m.span)?)
                            )
                        }
                        None => "AssertionError".to_string(),
                    };
                    return fail(stmt.span, LangErrorKind::Raised(text));
                }
            }
            StmtKind::Del(targets) => {
                for target in targets {
                    self.delete(target)?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    fn delete(&mut self, target: &Target) -> EResult<()> {
        match target {
            Target::Name { name, span } => {
                let removed = match self.frames.last_mut() {
                    Some(frame) if !frame.globals_declared.contains(name) => {
                        frame.locals.remove(name).is_some()
                    }
                    _ => {
                        self.assigned.retain(|n| n != name);
                        self.globals.remove(name).is_some()
                    }
                };
                if removed {
                    Ok(())
                } else {
                    fail(*span, LangErrorKind::UndefinedName(name.clone()))
                }
            }
            Target::Index { value, index, span } => {
                let container = self.eval(value)?;
                let index = self.eval(index)?;
                builtins::del_item(self, &container, &index, *span)
            }
            Target::Tuple { items, .. } => {
                for item in items {
                    self.delete(item)?;
                }
                Ok(())
            }
        }
    }

    fn handler_matches(&mut self, handler: &Handler, class: &str) -> EResult<bool> {
        let Some(classes) = &handler.classes else {
            return Ok(true);
        };
        let value = self.eval(classes)?;
        let candidates = match &value {
            Value::Tuple(items) => items.to_vec(),
            other => vec![other.clone()],
        };
        for candidate in candidates {
            let Value::Builtin(name) = candidate else {
                return type_error(classes.span, "except clause must name exception classes");
            };
            if !EXCEPTION_NAMES.contains(&name) {
                return type_error(classes.span, format!("{name} is not an exception class"));
            }
            let matches = name == class
                || matches!(name, "Exception" | "StandardError")
                || (name == "LookupError" && matches!(class, "KeyError" | "IndexError"))
                || (name == "ArithmeticError"
                    && matches!(class, "ZeroDivisionError" | "OverflowError"))
                || (matches!(name, "EnvironmentError" | "OSError" | "IOError")
                    && matches!(class, "OSError" | "IOError"));
            if matches {
                return Ok(true);
            }
        }
        Ok(false)
    }

    // ------------------------------------------------------------ expressions

    pub(crate) fn eval(&mut self, expr: &Expr) -> EResult<Value> {
        self.nested(expr.span, |this| this.eval_inner(expr))
    }

    fn eval_inner(&mut self, expr: &Expr) -> EResult<Value> {
        self.step(expr.span)?;
        let span = expr.span;
        match &expr.kind {
            ExprKind::Name(name) => self.lookup(name, span),
            ExprKind::None => Ok(Value::None),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Str(s) => self.new_str(s.clone(), span),
            ExprKind::List(items) => {
                let values = self.eval_all(items)?;
                self.new_list(values, span)
            }
            ExprKind::Tuple(items) => {
                let values = self.eval_all(items)?;
                self.new_tuple(values, span)
            }
            ExprKind::Dict(items) => {
                let dict = self.new_dict(Vec::new(), span)?;
                for (k, v) in items {
                    let key = self.eval(k)?;
                    let value = self.eval(v)?;
                    builtins::set_item(self, &dict, key, value, k.span)?;
                }
                Ok(dict)
            }
            ExprKind::ListComp { element, clauses } => {
                let mut out = Vec::new();
                self.comprehension(element, clauses, &mut out)?;
                self.new_list(out, span)
            }
            ExprKind::Binary { op, left, right } => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                self.binary(*op, &l, &r, span)
            }
            ExprKind::Unary { op, operand } => {
                let v = self.eval(operand)?;
                match (op, v.as_number()) {
                    (UnaryOp::Neg, Some(super::value::Number::Int(i))) => {
                        i.checked_neg().map(Value::Int).ok_or_else(|| {
                            LangError::new(span, LangErrorKind::Overflow("integer negation".into()))
                        })
                    }
                    (UnaryOp::Neg, Some(super::value::Number::Float(f))) => Ok(Value::Float(-f)),
                    (UnaryOp::Pos, Some(super::value::Number::Int(i))) => Ok(Value::Int(i)),
                    (UnaryOp::Pos, Some(super::value::Number::Float(f))) => Ok(Value::Float(f)),
                    (UnaryOp::Invert, Some(super::value::Number::Int(i))) => Ok(Value::Int(!i)),
                    _ => type_error(
                        span,
                        format!("bad operand type for unary operator: '{}'", v.type_name()),
                    ),
                }
            }
            ExprKind::Compare { first, rest } => {
                let mut left = self.eval(first)?;
                for (op, right_expr) in rest {
                    let right = self.eval(right_expr)?;
                    if !self.compare(*op, &left, &right, span)? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Ok(Value::Bool(true))
            }
            ExprKind::And(a, b) => {
                let left = self.eval(a)?;
                if !left.truthy() {
                    return Ok(left);
                }
                self.eval(b)
            }
            ExprKind::Or(a, b) => {
                let left = self.eval(a)?;
                if left.truthy() {
                    return Ok(left);
                }
                self.eval(b)
            }
            ExprKind::Not(e) => Ok(Value::Bool(!self.eval(e)?.truthy())),
            ExprKind::IfElse {
                condition,
                then,
                otherwise,
            } => {
                if self.eval(condition)?.truthy() {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            ExprKind::Call { func, args, kwargs } => {
                let callee = self.eval(func)?;
                let args = self.eval_all(args)?;
                let mut kw = Vec::with_capacity(kwargs.len());
                for (name, e) in kwargs {
                    kw.push((name.clone(), self.eval(e)?));
                }
                self.call(&callee, args, kw, span)
            }
            ExprKind::Attr { value, name } => {
                let v = self.eval(value)?;
                builtins::get_attr(self, &v, name, span)
            }
            ExprKind::Index { value, index } => {
                let v = self.eval(value)?;
                let i = self.eval(index)?;
                builtins::get_item(self, &v, &i, span)
            }
            ExprKind::Slice {
                value,
                lower,
                upper,
                step,
            } => {
                let v = self.eval(value)?;
                let bound = |e: &Option<Box<Expr>>, this: &mut Self| -> EResult<Option<i64>> {
                    match e {
                        None => Ok(None),
                        Some(e) => match this.eval(e)? {
                            Value::None => Ok(None),
                            Value::Int(i) => Ok(Some(i)),
                            Value::Bool(b) => Ok(Some(i64::from(b))),
                            other => type_error(
                                e.span,
                                format!(
                                    "slice indices must be integers, not {}",
                                    other.type_name()
                                ),
                            ),
                        },
                    }
                };
                let lo = bound(lower, self)?;
                let hi = bound(upper, self)?;
                let st = bound(step, self)?;
                builtins::slice(self, &v, lo, hi, st, span)
            }
        }
    }

    fn eval_all(&mut self, items: &[Expr]) -> EResult<Vec<Value>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.eval(item)?);
        }
        Ok(out)
    }

    fn comprehension(
        &mut self,
        element: &Expr,
        clauses: &[CompClause],
        out: &mut Vec<Value>,
    ) -> EResult<()> {
        let Some((first, rest)) = clauses.split_first() else {
            let value = self.eval(element)?;
            self.charge(16, element.span)?;
            out.push(value);
            return Ok(());
        };
        match first {
            CompClause::If(condition) => {
                if self.eval(condition)?.truthy() {
                    self.comprehension(element, rest, out)?;
                }
            }
            CompClause::For { target, iter } => {
                let iterable = self.eval(iter)?;
                for item in builtins::iterate(self, &iterable, iter.span)? {
                    self.step(iter.span)?;
                    // Python 2 list comprehensions leak their variable into the enclosing scope.
                    self.assign(target, item)?;
                    self.comprehension(element, rest, out)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn call(
        &mut self,
        callee: &Value,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        span: Span,
    ) -> EResult<Value> {
        match callee {
            Value::Function(function) => self.call_function(function, args, kwargs, span),
            Value::Builtin(name) => builtins::call_builtin(self, name, args, kwargs, span),
            Value::Method(method) => {
                let (receiver, name) = (&method.0, method.1);
                builtins::call_method(self, receiver, name, args, kwargs, span)
            }
            other => type_error(
                span,
                format!("'{}' object is not callable", other.type_name()),
            ),
        }
    }

    fn call_function(
        &mut self,
        function: &Rc<Function>,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        span: Span,
    ) -> EResult<Value> {
        if self.frames.len() >= self.options.limits.max_call_depth {
            return fail(
                span,
                LangErrorKind::RecursionLimit(self.options.limits.max_call_depth),
            );
        }
        let def = &function.def;
        if args.len() > def.params.len() {
            return type_error(
                span,
                format!(
                    "{}() takes at most {} arguments ({} given)",
                    def.name,
                    def.params.len(),
                    args.len()
                ),
            );
        }
        let mut locals: HashMap<String, Value> = HashMap::new();
        for ((name, _), value) in def.params.iter().zip(args) {
            locals.insert(name.clone(), value);
        }
        for (name, value) in kwargs {
            if !def.params.iter().any(|(p, _)| *p == name) {
                return type_error(
                    span,
                    format!("{}() got an unexpected keyword argument '{name}'", def.name),
                );
            }
            if locals.insert(name.clone(), value).is_some() {
                return type_error(
                    span,
                    format!("{}() got multiple values for argument '{name}'", def.name),
                );
            }
        }
        for ((name, _), default) in def.params.iter().zip(&function.defaults) {
            if !locals.contains_key(name) {
                match default {
                    Some(v) => {
                        locals.insert(name.clone(), v.clone());
                    }
                    None => {
                        return type_error(
                            span,
                            format!("{}() missing argument '{name}'", def.name),
                        )
                    }
                }
            }
        }
        self.frames.push(Frame {
            locals,
            globals_declared: HashSet::new(),
        });
        let result = self.exec_block(&def.body);
        self.frames.pop();
        match result? {
            Flow::Return(v) => Ok(v),
            _ => Ok(Value::None),
        }
    }

    pub(crate) fn compare(&mut self, op: CmpOp, a: &Value, b: &Value, span: Span) -> EResult<bool> {
        use std::cmp::Ordering;
        Ok(match op {
            CmpOp::Eq => self.equals(a, b, span)?,
            CmpOp::Ne => !self.equals(a, b, span)?,
            CmpOp::In => builtins::contains(self, b, a, span)?,
            CmpOp::NotIn => !builtins::contains(self, b, a, span)?,
            CmpOp::Is | CmpOp::IsNot => {
                let same = match (a, b) {
                    (Value::None, Value::None) => true,
                    (Value::Bool(x), Value::Bool(y)) => x == y,
                    (Value::List(x), Value::List(y)) => Rc::ptr_eq(x, y),
                    (Value::Dict(x), Value::Dict(y)) => Rc::ptr_eq(x, y),
                    (Value::Int(x), Value::Int(y)) => x == y,
                    (Value::Str(x), Value::Str(y)) => Rc::ptr_eq(x, y) || x == y,
                    (Value::Module(x), Value::Module(y)) => x == y,
                    _ => false,
                };
                if op == CmpOp::Is {
                    same
                } else {
                    !same
                }
            }
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                let ordering = builtins::order(self, a, b, span)?;
                match op {
                    CmpOp::Lt => ordering == Ordering::Less,
                    CmpOp::Le => ordering != Ordering::Greater,
                    CmpOp::Gt => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }
            }
        })
    }

    pub(crate) fn binary(&mut self, op: BinOp, a: &Value, b: &Value, span: Span) -> EResult<Value> {
        builtins::binary(self, op, a, b, span)
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
