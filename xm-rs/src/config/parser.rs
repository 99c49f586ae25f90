//! Recursive-descent parser for the config subset of Python 2. Anything outside the subset
//! is a located error naming the construct, never a guess.

use std::rc::Rc;

use super::ast::*;
use super::error::{LangError, LangErrorKind};
use super::lexer::{tokenize, Tok, Token};
use super::source::Span;

/// How deeply expressions and blocks may nest (keeps the parser's and evaluator's stack bounded).
pub const MAX_NESTING: usize = 100;

/// Parses a whole config file.
pub fn parse(text: &str) -> Result<Vec<Stmt>, LangError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        function_depth: 0,
        loop_depth: 0,
    };
    let mut body = Vec::new();
    while !parser.at(&Tok::Eof) {
        // Blank lines, and xl's empty statements (a lone `;`).
        if parser.at(&Tok::Newline) || parser.at_op(";") {
            parser.pos += 1;
            continue;
        }
        body.extend(parser.statement()?);
    }
    Ok(body)
}

/// Parses a single expression (used for command-line variables and tests).
pub fn parse_expression(text: &str) -> Result<Expr, LangError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        function_depth: 0,
        loop_depth: 0,
    };
    let expr = parser.testlist()?;
    parser.skip_newlines();
    parser.expect_tok(&Tok::Eof, "end of expression")?;
    Ok(expr)
}

const KEYWORDS: &[&str] = &[
    "and", "as", "assert", "break", "class", "continue", "def", "del", "elif", "else", "except",
    "exec", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "not", "or",
    "pass", "print", "raise", "return", "try", "while", "with", "yield",
];

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    function_depth: usize,
    loop_depth: usize,
}

type PResult<T> = Result<T, LangError>;

impl Parser {
    fn current(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn span(&self) -> Span {
        self.current().span
    }

    fn previous_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .map_or(0, |p| self.tokens[p].span.end)
    }

    fn advance(&mut self) -> Token {
        let token = self.current().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn at(&self, tok: &Tok) -> bool {
        &self.current().tok == tok
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(&self.current().tok, Tok::Op(o) if *o == op)
    }

    fn at_keyword(&self, word: &str) -> bool {
        matches!(&self.current().tok, Tok::Name(n) if n == word)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.at_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if self.at_keyword(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_newlines(&mut self) {
        while self.at(&Tok::Newline) {
            self.pos += 1;
        }
    }

    fn expected<T>(&self, what: &str) -> PResult<T> {
        Err(LangError::new(
            self.span(),
            LangErrorKind::Expected {
                expected: what.to_string(),
                found: self.current().tok.describe(),
            },
        ))
    }

    fn expect_op(&mut self, op: &str) -> PResult<Span> {
        if self.at_op(op) {
            Ok(self.advance().span)
        } else {
            self.expected(&format!("`{op}`"))
        }
    }

    fn expect_tok(&mut self, tok: &Tok, what: &str) -> PResult<Span> {
        if self.at(tok) {
            Ok(self.advance().span)
        } else {
            self.expected(what)
        }
    }

    fn expect_keyword(&mut self, word: &str) -> PResult<Span> {
        if self.at_keyword(word) {
            Ok(self.advance().span)
        } else {
            self.expected(&format!("`{word}`"))
        }
    }

    fn identifier(&mut self) -> PResult<(String, Span)> {
        match &self.current().tok {
            Tok::Name(n) if !KEYWORDS.contains(&n.as_str()) => {
                let n = n.clone();
                let span = self.advance().span;
                Ok((n, span))
            }
            _ => self.expected("a name"),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(LangError::new(
                self.span(),
                LangErrorKind::TooDeep(MAX_NESTING),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn unsupported<T>(&self, span: Span, what: &str) -> PResult<T> {
        Err(LangError::new(
            span,
            LangErrorKind::Unsupported(what.to_string()),
        ))
    }

    // ---------------------------------------------------------------- statements

    fn statement(&mut self) -> PResult<Vec<Stmt>> {
        let span = self.span();
        let keyword = match &self.current().tok {
            Tok::Name(n) => n.clone(),
            Tok::Indent => return Err(LangError::new(span, LangErrorKind::UnexpectedIndent)),
            _ => String::new(),
        };
        match keyword.as_str() {
            "if" | "for" | "while" | "def" | "try" => {
                self.enter()?;
                let stmt = self.compound(&keyword);
                self.leave();
                Ok(vec![stmt?])
            }
            "class" => self.unsupported(span, "`class` definition"),
            "with" => self.unsupported(span, "`with` statement"),
            "elif" | "else" | "except" | "finally" => {
                self.expected("a statement (this `else`/`elif`/`except` has no matching block)")
            }
            _ => self.simple_statements(),
        }
    }

    fn simple_statements(&mut self) -> PResult<Vec<Stmt>> {
        let mut out = vec![self.small_statement()?];
        while self.eat_op(";") {
            if self.at(&Tok::Newline) || self.at(&Tok::Eof) {
                break;
            }
            out.push(self.small_statement()?);
        }
        if !self.at(&Tok::Eof) {
            self.expect_tok(&Tok::Newline, "end of line")?;
        }
        Ok(out)
    }

    fn small_statement(&mut self) -> PResult<Stmt> {
        let start = self.span();
        let keyword = match &self.current().tok {
            Tok::Name(n) => n.clone(),
            _ => String::new(),
        };
        let kind = match keyword.as_str() {
            "pass" => {
                self.advance();
                StmtKind::Pass
            }
            "break" | "continue" => {
                self.advance();
                if self.loop_depth == 0 {
                    let word = if keyword == "break" {
                        "break"
                    } else {
                        "continue"
                    };
                    return Err(LangError::new(start, LangErrorKind::OutsideLoop(word)));
                }
                if keyword == "break" {
                    StmtKind::Break
                } else {
                    StmtKind::Continue
                }
            }
            "return" => {
                self.advance();
                if self.function_depth == 0 {
                    return Err(LangError::new(
                        start,
                        LangErrorKind::OutsideFunction("return"),
                    ));
                }
                if self.at_end_of_statement() {
                    StmtKind::Return(None)
                } else {
                    StmtKind::Return(Some(self.testlist()?))
                }
            }
            "print" => {
                self.advance();
                if self.at_op(">>") {
                    return self.unsupported(self.span(), "`print >>file`");
                }
                let mut items = Vec::new();
                while !self.at_end_of_statement() {
                    items.push(self.test()?);
                    if !self.eat_op(",") {
                        break;
                    }
                }
                StmtKind::Print(items)
            }
            "raise" => {
                self.advance();
                if self.at_end_of_statement() {
                    StmtKind::Raise(None)
                } else {
                    let value = self.test()?;
                    if self.at_op(",") {
                        return self.unsupported(
                            self.span(),
                            "`raise Class, value` (write `raise Class(value)`)",
                        );
                    }
                    StmtKind::Raise(Some(value))
                }
            }
            "global" => {
                self.advance();
                let mut names = vec![self.identifier()?.0];
                while self.eat_op(",") {
                    names.push(self.identifier()?.0);
                }
                StmtKind::Global(names)
            }
            "assert" => {
                self.advance();
                let condition = self.test()?;
                let message = if self.eat_op(",") {
                    Some(self.test()?)
                } else {
                    None
                };
                StmtKind::Assert { condition, message }
            }
            "del" => {
                self.advance();
                let expr = self.testlist()?;
                let target = self.to_target(expr)?;
                StmtKind::Del(vec![target])
            }
            "import" => {
                self.advance();
                let mut names = Vec::new();
                loop {
                    let (module, span) = self.dotted_name()?;
                    let alias = if self.eat_keyword("as") {
                        Some(self.identifier()?.0)
                    } else {
                        None
                    };
                    names.push((module, alias, span));
                    if !self.eat_op(",") {
                        break;
                    }
                }
                StmtKind::Import(names)
            }
            "from" => {
                self.advance();
                if self.at_op(".") {
                    return self.unsupported(self.span(), "relative import");
                }
                let (module, _) = self.dotted_name()?;
                self.expect_keyword("import")?;
                let mut names = Vec::new();
                if self.at_op("*") {
                    let span = self.advance().span;
                    names.push(("*".to_string(), None, span));
                } else {
                    let parenthesised = self.eat_op("(");
                    loop {
                        let (name, span) = self.identifier()?;
                        let alias = if self.eat_keyword("as") {
                            Some(self.identifier()?.0)
                        } else {
                            None
                        };
                        names.push((name, alias, span));
                        if !self.eat_op(",") || (parenthesised && self.at_op(")")) {
                            break;
                        }
                    }
                    if parenthesised {
                        self.expect_op(")")?;
                    }
                }
                StmtKind::FromImport { module, names }
            }
            "exec" => return self.unsupported(start, "`exec`"),
            "yield" => return self.unsupported(start, "`yield`"),
            "lambda" => return self.unsupported(start, "`lambda`"),
            _ => return self.expression_statement(),
        };
        Ok(Stmt {
            kind,
            span: start.to(Span::new(start.start, self.previous_end())),
        })
    }

    fn at_end_of_statement(&self) -> bool {
        self.at(&Tok::Newline) || self.at(&Tok::Eof) || self.at_op(";")
    }

    fn dotted_name(&mut self) -> PResult<(String, Span)> {
        let (mut name, mut span) = self.identifier()?;
        while self.eat_op(".") {
            let (part, part_span) = self.identifier()?;
            name.push('.');
            name.push_str(&part);
            span = span.to(part_span);
        }
        Ok((name, span))
    }

    fn expression_statement(&mut self) -> PResult<Stmt> {
        let start = self.span();
        let first = self.testlist()?;
        let aug = match &self.current().tok {
            Tok::Op("+=") => Some(BinOp::Add),
            Tok::Op("-=") => Some(BinOp::Sub),
            Tok::Op("*=") => Some(BinOp::Mul),
            Tok::Op("/=") => Some(BinOp::Div),
            Tok::Op("//=") => Some(BinOp::FloorDiv),
            Tok::Op("%=") => Some(BinOp::Mod),
            Tok::Op("**=") => Some(BinOp::Pow),
            Tok::Op("|=") => Some(BinOp::BitOr),
            Tok::Op("&=") => Some(BinOp::BitAnd),
            Tok::Op("^=") => Some(BinOp::BitXor),
            Tok::Op("<<=") => Some(BinOp::Shl),
            Tok::Op(">>=") => Some(BinOp::Shr),
            _ => None,
        };
        if let Some(op) = aug {
            self.advance();
            let target = self.to_target(first)?;
            if matches!(target, Target::Tuple { .. }) {
                return Err(LangError::new(
                    target.span(),
                    LangErrorKind::BadAssignTarget("a tuple in augmented assignment".into()),
                ));
            }
            let value = self.testlist()?;
            let span = start.to(value.span);
            return Ok(Stmt {
                kind: StmtKind::AugAssign { target, op, value },
                span,
            });
        }
        if !self.at_op("=") {
            let span = first.span;
            return Ok(Stmt {
                kind: StmtKind::Expr(first),
                span,
            });
        }
        let mut exprs = vec![first];
        while self.eat_op("=") {
            exprs.push(self.testlist()?);
        }
        let value = exprs.pop().ok_or_else(|| {
            LangError::new(start, LangErrorKind::BadAssignTarget("nothing".into()))
        })?;
        let targets = exprs
            .into_iter()
            .map(|e| self.to_target(e))
            .collect::<PResult<Vec<_>>>()?;
        let span = start.to(value.span);
        Ok(Stmt {
            kind: StmtKind::Assign { targets, value },
            span,
        })
    }

    fn to_target(&self, expr: Expr) -> PResult<Target> {
        let span = expr.span;
        match expr.kind {
            ExprKind::Name(name) => Ok(Target::Name { name, span }),
            ExprKind::Index { value, index } => Ok(Target::Index {
                value: *value,
                index: *index,
                span,
            }),
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let items = items
                    .into_iter()
                    .map(|e| self.to_target(e))
                    .collect::<PResult<Vec<_>>>()?;
                Ok(Target::Tuple { items, span })
            }
            ExprKind::Attr { name, .. } => Err(LangError::new(
                span,
                LangErrorKind::Unsupported(format!("assigning to an attribute (`.{name} = ...`)")),
            )),
            ExprKind::Slice { .. } => Err(LangError::new(
                span,
                LangErrorKind::Unsupported("assigning to a slice".into()),
            )),
            ExprKind::None | ExprKind::Bool(_) => Err(LangError::new(
                span,
                LangErrorKind::BadAssignTarget("a constant".into()),
            )),
            ExprKind::Call { .. } => Err(LangError::new(
                span,
                LangErrorKind::BadAssignTarget("a function call".into()),
            )),
            _ => Err(LangError::new(
                span,
                LangErrorKind::BadAssignTarget("an expression".into()),
            )),
        }
    }

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        self.expect_op(":")?;
        if !self.at(&Tok::Newline) {
            return self.simple_statements();
        }
        self.advance();
        self.skip_newlines();
        if !self.at(&Tok::Indent) {
            return Err(LangError::new(self.span(), LangErrorKind::ExpectedIndent));
        }
        self.advance();
        let mut body = Vec::new();
        while !self.at(&Tok::Dedent) && !self.at(&Tok::Eof) {
            if self.at(&Tok::Newline) {
                self.advance();
                continue;
            }
            body.extend(self.statement()?);
        }
        if self.at(&Tok::Dedent) {
            self.advance();
        }
        Ok(body)
    }

    fn compound(&mut self, keyword: &str) -> PResult<Stmt> {
        let start = self.advance().span;
        let kind = match keyword {
            "if" => {
                let mut branches = vec![(self.test()?, self.block()?)];
                let mut orelse = Vec::new();
                loop {
                    if self.eat_keyword("elif") {
                        branches.push((self.test()?, self.block()?));
                    } else if self.eat_keyword("else") {
                        orelse = self.block()?;
                        break;
                    } else {
                        break;
                    }
                }
                StmtKind::If { branches, orelse }
            }
            "for" => {
                let target_expr = self.exprlist()?;
                let target = self.to_target(target_expr)?;
                self.expect_keyword("in")?;
                let iter = self.testlist()?;
                self.loop_depth += 1;
                let body = self.block();
                self.loop_depth -= 1;
                let body = body?;
                let orelse = if self.eat_keyword("else") {
                    self.block()?
                } else {
                    Vec::new()
                };
                StmtKind::For {
                    target,
                    iter,
                    body,
                    orelse,
                }
            }
            "while" => {
                let condition = self.test()?;
                self.loop_depth += 1;
                let body = self.block();
                self.loop_depth -= 1;
                let body = body?;
                let orelse = if self.eat_keyword("else") {
                    self.block()?
                } else {
                    Vec::new()
                };
                StmtKind::While {
                    condition,
                    body,
                    orelse,
                }
            }
            "def" => {
                let (name, _) = self.identifier()?;
                self.expect_op("(")?;
                let mut params: Vec<(String, Option<Expr>)> = Vec::new();
                while !self.at_op(")") {
                    if self.at_op("*") || self.at_op("**") {
                        return self.unsupported(self.span(), "`*args`/`**kwargs` parameters");
                    }
                    let (param, span) = self.identifier()?;
                    if params.iter().any(|(p, _)| *p == param) {
                        return Err(LangError::new(
                            span,
                            LangErrorKind::Expected {
                                expected: "distinct parameter names".into(),
                                found: format!("`{param}` twice"),
                            },
                        ));
                    }
                    let default = if self.eat_op("=") {
                        Some(self.test()?)
                    } else {
                        None
                    };
                    if default.is_none() && params.iter().any(|(_, d)| d.is_some()) {
                        return self.expected(
                            "a default value (parameters after one with a default need one too)",
                        );
                    }
                    params.push((param, default));
                    if !self.eat_op(",") {
                        break;
                    }
                }
                self.expect_op(")")?;
                self.function_depth += 1;
                let saved_loop_depth = std::mem::replace(&mut self.loop_depth, 0);
                let body = self.block();
                self.loop_depth = saved_loop_depth;
                self.function_depth -= 1;
                let body = body?;
                let span = start.to(Span::new(start.start, self.previous_end()));
                StmtKind::Def(Rc::new(FuncDef {
                    name,
                    params,
                    body,
                    span,
                }))
            }
            "try" => {
                let body = self.block()?;
                let mut handlers = Vec::new();
                while self.at_keyword("except") {
                    self.advance();
                    let (classes, bind) = if self.at_op(":") {
                        (None, None)
                    } else {
                        let classes = self.test()?;
                        let bind = if self.eat_keyword("as") || self.eat_op(",") {
                            Some(self.identifier()?.0)
                        } else {
                            None
                        };
                        (Some(classes), bind)
                    };
                    handlers.push(Handler {
                        classes,
                        bind,
                        body: self.block()?,
                    });
                }
                if self.at_keyword("finally") {
                    return self.unsupported(self.span(), "`try ... finally`");
                }
                if handlers.is_empty() {
                    return self.expected("`except`");
                }
                let orelse = if self.eat_keyword("else") {
                    self.block()?
                } else {
                    Vec::new()
                };
                StmtKind::Try {
                    body,
                    handlers,
                    orelse,
                }
            }
            _ => return self.expected("a statement"),
        };
        Ok(Stmt {
            kind,
            span: start.to(Span::new(start.start, self.previous_end())),
        })
    }

    // ---------------------------------------------------------------- expressions

    /// `a, b` as a tuple, or a single expression.
    fn testlist(&mut self) -> PResult<Expr> {
        let first = self.test()?;
        if !self.at_op(",") {
            return Ok(first);
        }
        let start = first.span;
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.at_end_of_testlist() {
                break;
            }
            items.push(self.test()?);
        }
        let span = start.to(Span::new(start.start, self.previous_end()));
        Ok(Expr {
            kind: ExprKind::Tuple(items),
            span,
        })
    }

    fn at_end_of_testlist(&self) -> bool {
        self.at_end_of_statement()
            || self.at_op("=")
            || self.at_op(")")
            || self.at_op("]")
            || self.at_op(":")
            || matches!(&self.current().tok, Tok::Op(op) if op.ends_with('=') && *op != "==" && *op != "!=" && *op != "<=" && *op != ">=")
    }

    /// Targets of a `for`: stops before `in`.
    fn exprlist(&mut self) -> PResult<Expr> {
        let first = self.or_expr()?;
        if !self.at_op(",") {
            return Ok(first);
        }
        let start = first.span;
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.at_keyword("in") {
                break;
            }
            items.push(self.or_expr()?);
        }
        Ok(Expr {
            kind: ExprKind::Tuple(items),
            span: start.to(Span::new(start.start, self.previous_end())),
        })
    }

    fn test(&mut self) -> PResult<Expr> {
        self.enter()?;
        let result = self.test_inner();
        self.leave();
        result
    }

    fn test_inner(&mut self) -> PResult<Expr> {
        if self.at_keyword("lambda") {
            return self.unsupported(self.span(), "`lambda`");
        }
        let value = self.or_test()?;
        if self.at_keyword("if") {
            self.advance();
            let condition = self.or_test()?;
            self.expect_keyword("else")?;
            let otherwise = self.test()?;
            let span = value.span.to(otherwise.span);
            return Ok(Expr {
                kind: ExprKind::IfElse {
                    condition: Box::new(condition),
                    then: Box::new(value),
                    otherwise: Box::new(otherwise),
                },
                span,
            });
        }
        Ok(value)
    }

    fn or_test(&mut self) -> PResult<Expr> {
        self.boolean_level("or", ExprKind::Or, Self::and_test)
    }

    fn and_test(&mut self) -> PResult<Expr> {
        self.boolean_level("and", ExprKind::And, Self::not_test)
    }

    /// `a KEYWORD b KEYWORD c`, left-associative, for `or` and `and`.
    fn boolean_level(
        &mut self,
        keyword: &str,
        make: fn(Box<Expr>, Box<Expr>) -> ExprKind,
        next: fn(&mut Self) -> PResult<Expr>,
    ) -> PResult<Expr> {
        let mut left = next(self)?;
        while self.eat_keyword(keyword) {
            let right = next(self)?;
            let span = left.span.to(right.span);
            left = Expr {
                kind: make(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn not_test(&mut self) -> PResult<Expr> {
        if self.at_keyword("not") {
            let start = self.advance().span;
            self.enter()?;
            let operand = self.not_test();
            self.leave();
            let operand = operand?;
            let span = start.to(operand.span);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(operand)),
                span,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let first = self.or_expr()?;
        let mut rest = Vec::new();
        loop {
            let op = match &self.current().tok {
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") | Tok::Op("<>") => CmpOp::Ne,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                Tok::Name(n) if n == "in" => CmpOp::In,
                Tok::Name(n) if n == "is" => {
                    self.advance();
                    let op = if self.eat_keyword("not") {
                        CmpOp::IsNot
                    } else {
                        CmpOp::Is
                    };
                    rest.push((op, self.or_expr()?));
                    continue;
                }
                Tok::Name(n) if n == "not" => {
                    self.advance();
                    self.expect_keyword("in")?;
                    rest.push((CmpOp::NotIn, self.or_expr()?));
                    continue;
                }
                _ => break,
            };
            self.advance();
            rest.push((op, self.or_expr()?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let span = rest
            .last()
            .map_or(first.span, |(_, e)| first.span.to(e.span));
        Ok(Expr {
            kind: ExprKind::Compare {
                first: Box::new(first),
                rest,
            },
            span,
        })
    }

    fn binary_level(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> PResult<Expr>,
    ) -> PResult<Expr> {
        let mut left = next(self)?;
        // Each link of a chain like `a + b + c` deepens the (left-leaning) tree, so it
        // counts against the nesting limit; `leave` runs once per link at the end.
        let mut links = 0;
        let result = 'outer: loop {
            for (symbol, op) in ops {
                if self.at_op(symbol) {
                    self.advance();
                    links += 1;
                    if let Err(e) = self.enter() {
                        break 'outer Err(e);
                    }
                    let right = match next(self) {
                        Ok(right) => right,
                        Err(e) => break 'outer Err(e),
                    };
                    let span = left.span.to(right.span);
                    left = Expr {
                        kind: ExprKind::Binary {
                            op: *op,
                            left: Box::new(left),
                            right: Box::new(right),
                        },
                        span,
                    };
                    continue 'outer;
                }
            }
            break Ok(left);
        };
        for _ in 0..links {
            self.leave();
        }
        result
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        self.binary_level(&[("|", BinOp::BitOr)], Self::xor_expr)
    }

    fn xor_expr(&mut self) -> PResult<Expr> {
        self.binary_level(&[("^", BinOp::BitXor)], Self::and_expr)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        self.binary_level(&[("&", BinOp::BitAnd)], Self::shift_expr)
    }

    fn shift_expr(&mut self) -> PResult<Expr> {
        self.binary_level(&[("<<", BinOp::Shl), (">>", BinOp::Shr)], Self::arith_expr)
    }

    fn arith_expr(&mut self) -> PResult<Expr> {
        self.binary_level(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::term)
    }

    fn term(&mut self) -> PResult<Expr> {
        self.binary_level(
            &[
                ("*", BinOp::Mul),
                ("//", BinOp::FloorDiv),
                ("/", BinOp::Div),
                ("%", BinOp::Mod),
            ],
            Self::factor,
        )
    }

    fn factor(&mut self) -> PResult<Expr> {
        let op = match &self.current().tok {
            Tok::Op("-") => Some(UnaryOp::Neg),
            Tok::Op("+") => Some(UnaryOp::Pos),
            Tok::Op("~") => Some(UnaryOp::Invert),
            _ => None,
        };
        if let Some(op) = op {
            let start = self.advance().span;
            self.enter()?;
            let operand = self.factor();
            self.leave();
            let operand = operand?;
            let span = start.to(operand.span);
            return Ok(Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(operand),
                },
                span,
            });
        }
        self.power()
    }

    fn power(&mut self) -> PResult<Expr> {
        let value = self.atom()?;
        let depth_before = self.depth;
        let result = self.trailers(value);
        self.depth = depth_before;
        result
    }

    fn trailers(&mut self, mut value: Expr) -> PResult<Expr> {
        loop {
            if self.at_op("(") || self.at_op("[") || self.at_op(".") {
                // Like operator chains, `a.b[0](1)` deepens the tree once per trailer.
                self.enter()?;
            }
            if self.at_op("(") {
                self.advance();
                let mut args = Vec::new();
                let mut kwargs: Vec<(String, Expr)> = Vec::new();
                while !self.at_op(")") {
                    if self.at_op("*") || self.at_op("**") {
                        return self.unsupported(self.span(), "`*args`/`**kwargs` in a call");
                    }
                    let is_keyword = matches!(&self.current().tok, Tok::Name(_))
                        && matches!(
                            self.tokens.get(self.pos + 1).map(|t| &t.tok),
                            Some(Tok::Op("="))
                        );
                    if is_keyword {
                        let (name, _) = self.identifier()?;
                        self.advance();
                        kwargs.push((name, self.test()?));
                    } else {
                        if !kwargs.is_empty() {
                            return self
                                .expected("a keyword argument (positional arguments come first)");
                        }
                        let arg = self.test()?;
                        if self.at_keyword("for") {
                            return self.unsupported(
                                arg.span,
                                "generator expression (use a list comprehension `[...]`)",
                            );
                        }
                        args.push(arg);
                    }
                    if !self.eat_op(",") {
                        break;
                    }
                }
                let end = self.expect_op(")")?;
                let span = value.span.to(end);
                value = Expr {
                    kind: ExprKind::Call {
                        func: Box::new(value),
                        args,
                        kwargs,
                    },
                    span,
                };
            } else if self.at_op("[") {
                self.advance();
                value = self.subscript(value)?;
            } else if self.at_op(".") {
                self.advance();
                let (name, name_span) = match &self.current().tok {
                    Tok::Name(n) => {
                        let n = n.clone();
                        (n, self.advance().span)
                    }
                    _ => return self.expected("an attribute name"),
                };
                let span = value.span.to(name_span);
                value = Expr {
                    kind: ExprKind::Attr {
                        value: Box::new(value),
                        name,
                    },
                    span,
                };
            } else {
                break;
            }
        }
        if self.at_op("**") {
            self.advance();
            self.enter()?;
            let exponent = self.factor();
            self.leave();
            let exponent = exponent?;
            let span = value.span.to(exponent.span);
            value = Expr {
                kind: ExprKind::Binary {
                    op: BinOp::Pow,
                    left: Box::new(value),
                    right: Box::new(exponent),
                },
                span,
            };
        }
        Ok(value)
    }

    fn subscript(&mut self, value: Expr) -> PResult<Expr> {
        let lower = if self.at_op(":") {
            None
        } else {
            Some(Box::new(self.test()?))
        };
        if self.at_op("]") {
            let end = self.advance().span;
            let span = value.span.to(end);
            let index = lower.ok_or_else(|| {
                LangError::new(
                    end,
                    LangErrorKind::Expected {
                        expected: "an index".into(),
                        found: "`]`".into(),
                    },
                )
            })?;
            return Ok(Expr {
                kind: ExprKind::Index {
                    value: Box::new(value),
                    index,
                },
                span,
            });
        }
        if self.at_op(",") {
            return self.unsupported(self.span(), "multi-dimensional index");
        }
        self.expect_op(":")?;
        let upper = if self.at_op(":") || self.at_op("]") {
            None
        } else {
            Some(Box::new(self.test()?))
        };
        let step = if self.eat_op(":") && !self.at_op("]") {
            Some(Box::new(self.test()?))
        } else {
            None
        };
        let end = self.expect_op("]")?;
        let span = value.span.to(end);
        Ok(Expr {
            kind: ExprKind::Slice {
                value: Box::new(value),
                lower,
                upper,
                step,
            },
            span,
        })
    }

    fn atom(&mut self) -> PResult<Expr> {
        let token = self.current().clone();
        let span = token.span;
        match token.tok {
            Tok::Int(i) => {
                self.advance();
                Ok(Expr {
                    kind: ExprKind::Int(i),
                    span,
                })
            }
            Tok::Float(f) => {
                self.advance();
                Ok(Expr {
                    kind: ExprKind::Float(f),
                    span,
                })
            }
            Tok::Str(_) => {
                // Adjacent literals concatenate: 'a' 'b' == 'ab'.
                let mut value = String::new();
                let mut end = span;
                while let Tok::Str(s) = &self.current().tok {
                    value.push_str(s);
                    end = self.advance().span;
                }
                Ok(Expr {
                    kind: ExprKind::Str(value),
                    span: span.to(end),
                })
            }
            Tok::Name(name) => {
                if KEYWORDS.contains(&name.as_str()) {
                    return match name.as_str() {
                        "lambda" | "yield" => self.unsupported(span, &format!("`{name}`")),
                        _ => self.expected("an expression"),
                    };
                }
                self.advance();
                let kind = match name.as_str() {
                    "None" => ExprKind::None,
                    "True" => ExprKind::Bool(true),
                    "False" => ExprKind::Bool(false),
                    _ => ExprKind::Name(name),
                };
                Ok(Expr { kind, span })
            }
            Tok::Op("(") => {
                self.advance();
                self.enter()?;
                let result = self.parenthesised(span);
                self.leave();
                result
            }
            Tok::Op("[") => {
                self.advance();
                self.enter()?;
                let result = self.list_display(span);
                self.leave();
                result
            }
            Tok::Op("{") => {
                self.advance();
                self.enter()?;
                let result = self.dict_display(span);
                self.leave();
                result
            }
            Tok::Op("`") => self.unsupported(span, "backquote repr (use repr())"),
            Tok::Op("@") => self.unsupported(span, "decorator"),
            _ => self.expected("an expression"),
        }
    }

    fn parenthesised(&mut self, start: Span) -> PResult<Expr> {
        if self.at_op(")") {
            let end = self.advance().span;
            return Ok(Expr {
                kind: ExprKind::Tuple(Vec::new()),
                span: start.to(end),
            });
        }
        let first = self.test()?;
        if self.at_keyword("for") {
            return self.unsupported(
                first.span,
                "generator expression (use a list comprehension `[...]`)",
            );
        }
        if self.at_op(")") {
            let end = self.advance().span;
            return Ok(Expr {
                kind: first.kind,
                span: start.to(end),
            });
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.at_op(")") {
                break;
            }
            items.push(self.test()?);
        }
        let end = self.expect_op(")")?;
        Ok(Expr {
            kind: ExprKind::Tuple(items),
            span: start.to(end),
        })
    }

    fn list_display(&mut self, start: Span) -> PResult<Expr> {
        let mut items = Vec::new();
        if self.at_op("]") {
            let end = self.advance().span;
            return Ok(Expr {
                kind: ExprKind::List(items),
                span: start.to(end),
            });
        }
        let first = self.test()?;
        if self.at_keyword("for") {
            let mut clauses = Vec::new();
            while self.at_keyword("for") || self.at_keyword("if") {
                if self.eat_keyword("for") {
                    let target_expr = self.exprlist()?;
                    let target = self.to_target(target_expr)?;
                    self.expect_keyword("in")?;
                    // Python 2 allows an unparenthesised tuple here; keep to a single test.
                    let iter = self.or_test()?;
                    clauses.push(CompClause::For { target, iter });
                } else {
                    self.advance();
                    clauses.push(CompClause::If(self.or_test()?));
                }
            }
            let end = self.expect_op("]")?;
            return Ok(Expr {
                kind: ExprKind::ListComp {
                    element: Box::new(first),
                    clauses,
                },
                span: start.to(end),
            });
        }
        items.push(first);
        while self.eat_op(",") {
            if self.at_op("]") {
                break;
            }
            items.push(self.test()?);
        }
        let end = self.expect_op("]")?;
        Ok(Expr {
            kind: ExprKind::List(items),
            span: start.to(end),
        })
    }

    fn dict_display(&mut self, start: Span) -> PResult<Expr> {
        let mut items = Vec::new();
        while !self.at_op("}") {
            let key = self.test()?;
            self.expect_op(":")?;
            let value = self.test()?;
            if self.at_keyword("for") {
                return self.unsupported(value.span, "dict comprehension");
            }
            items.push((key, value));
            if !self.eat_op(",") {
                break;
            }
        }
        let end = self.expect_op("}")?;
        Ok(Expr {
            kind: ExprKind::Dict(items),
            span: start.to(end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Stmt> {
        match parse(text) {
            Ok(body) => body,
            Err(e) => panic!("parse of {text:?} failed: {e:?}"),
        }
    }

    fn parse_err(text: &str) -> LangError {
        match parse(text) {
            Ok(body) => panic!("expected {text:?} to fail, parsed {body:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn assignment_and_augmented_assignment() {
        let body = parse_ok("x = 1\nx += 2; y = z = 3;\n");
        assert_eq!(body.len(), 3);
        assert!(matches!(
            body[1].kind,
            StmtKind::AugAssign { op: BinOp::Add, .. }
        ));
        assert!(matches!(&body[2].kind, StmtKind::Assign { targets, .. } if targets.len() == 2));
    }

    #[test]
    fn precedence_of_arithmetic_and_formatting() {
        let body = parse_ok("x = 'a%d' % 1 + 2 * 3");
        let StmtKind::Assign { value, .. } = &body[0].kind else {
            panic!("not an assignment")
        };
        assert!(matches!(
            value.kind,
            ExprKind::Binary { op: BinOp::Add, .. }
        ));
    }

    #[test]
    fn compound_statements_nest() {
        let body = parse_ok(
            "import os, re\nfrom os.path import exists as e\ndef f(a, b=2):\n    if a:\n        return a\n    elif b:\n        pass\n    else:\n        return None\nfor i in range(3):\n    if i == 1: continue\n    x = i\n",
        );
        assert_eq!(body.len(), 4);
        assert!(matches!(body[2].kind, StmtKind::Def(_)));
        assert!(matches!(body[3].kind, StmtKind::For { .. }));
    }

    #[test]
    fn slices_calls_and_comprehensions() {
        parse_ok("a = b[1:2]\nc = b[::2]\nd = f(1, x=2)\ne = [s.strip() for s in l if s]\nf = {'a': 1, 2: [3]}\ng = (1,)\nh = x if y else z\n");
    }

    #[test]
    fn error_names_the_unsupported_construct_and_position() {
        let e = parse_err("x = 1\nclass A:\n    pass\n");
        assert!(matches!(e.kind, LangErrorKind::Unsupported(ref s) if s.contains("class")));
        assert_eq!(e.span.start, 6);
        assert!(matches!(
            parse_err("f = lambda x: x").kind,
            LangErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            parse_err("with f: pass").kind,
            LangErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            parse_err("x = (i for i in l)").kind,
            LangErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            parse_err("exec 'x=1'").kind,
            LangErrorKind::Unsupported(_)
        ));
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        assert!(matches!(
            parse_err("x = ").kind,
            LangErrorKind::Expected { .. }
        ));
        assert!(matches!(
            parse_err("x = 1 2").kind,
            LangErrorKind::Expected { .. }
        ));
        assert!(matches!(
            parse_err("1 = x").kind,
            LangErrorKind::BadAssignTarget(_)
        ));
        assert!(matches!(
            parse_err("f() = x").kind,
            LangErrorKind::BadAssignTarget(_)
        ));
        assert!(matches!(
            parse_err("if x:\nx = 1").kind,
            LangErrorKind::ExpectedIndent
        ));
        assert!(matches!(
            parse_err("  x = 1").kind,
            LangErrorKind::UnexpectedIndent
        ));
        assert!(matches!(
            parse_err("return 1").kind,
            LangErrorKind::OutsideFunction(_)
        ));
        assert!(matches!(
            parse_err("break").kind,
            LangErrorKind::OutsideLoop(_)
        ));
        assert!(matches!(
            parse_err("else:\n  x = 1").kind,
            LangErrorKind::Expected { .. }
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("x = {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(matches!(parse_err(&text).kind, LangErrorKind::TooDeep(_)));
        let text = format!("x = {}1", "-".repeat(5000));
        assert!(matches!(parse_err(&text).kind, LangErrorKind::TooDeep(_)));
        let text = format!("x = {}1", "not ".repeat(5000));
        assert!(matches!(parse_err(&text).kind, LangErrorKind::TooDeep(_)));
        let mut nested = String::new();
        for level in 0..100 {
            nested.push_str(&" ".repeat(level));
            nested.push_str("if x:\n");
        }
        nested.push_str(&" ".repeat(100));
        nested.push_str("pass\n");
        assert!(matches!(parse_err(&nested).kind, LangErrorKind::TooDeep(_)));
    }
}
