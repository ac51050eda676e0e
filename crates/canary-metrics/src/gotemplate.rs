//! Go's `text/template`, as Flagger renders MetricTemplate queries (`RenderQuery`: the
//! model's functions, no data, `missingkey=error`): text and `{{ }}` actions with `{{-`
//! and `-}}` trimming and `/* */` comments; pipelines (`a | b`), parenthesised pipelines,
//! variables (`$x := ...`, `$x = ...`, `$`), field and key chains (`variables.key`,
//! `$v.key`), string, raw string, number, boolean and nil literals; `if` / `else if` /
//! `else`, `range` (with `$i, $v :=`, over maps in key order and lists) and `with`, each
//! with `end`; and Go's builtins `and`, `or`, `not`, `len`, `index`, `print`, `printf`,
//! `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `html`, `js`, `urlquery`.
//! `define`, `template` and `block` are refused: a MetricTemplate is one template.

use std::collections::BTreeMap;

/// A value of the template language.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Go's nil (the data Flagger passes).
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A map with string keys (`variables`).
    Map(BTreeMap<String, Value>),
    /// A list.
    List(Vec<Value>),
}

/// A problem and the byte offset of the action it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the template text.
    pub offset: usize,
    /// What is wrong, in Go's words where Go has them.
    pub message: String,
}

type Res<T> = Result<T, Problem>;

/// The functions a template may call besides the builtins: Flagger's model.
pub type Functions = BTreeMap<String, Value>;

/// Renders `text` with `functions` (each a function without arguments returning its value).
pub fn render(text: &str, functions: &Functions) -> Res<String> {
    let nodes = parse(text)?;
    let mut out = String::new();
    let mut run = Run {
        functions,
        vars: vec![("$".into(), Value::Nil)],
        dot: Value::Nil,
    };
    run.nodes(&nodes, &mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------- lexing

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Field(String, bool),
    Dot,
    Var(String),
    Lit(Value),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

/// One action's tokens, with their offsets.
fn lex(src: &str, base: usize) -> Res<Vec<(Tok, usize)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: String| Problem {
        offset: base + at,
        message: m,
    };
    while i < b.len() {
        let c = b[i] as char;
        let start = i;
        let spaced = i == 0 || (b[i - 1] as char).is_whitespace();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push((Tok::LParen, start));
                i += 1
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1
            }
            '|' => {
                out.push((Tok::Pipe, start));
                i += 1
            }
            ',' => {
                out.push((Tok::Comma, start));
                i += 1
            }
            ':' if b.get(i + 1) == Some(&b'=') => {
                out.push((Tok::Declare, start));
                i += 2
            }
            '=' => {
                out.push((Tok::Assign, start));
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(err(start, "unterminated quoted string".into()));
                    };
                    match ch {
                        b'"' => break,
                        b'\\' => {
                            let esc = *b
                                .get(i + 1)
                                .ok_or_else(|| err(start, "unterminated quoted string".into()))?;
                            s.push(match esc {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'"' => '"',
                                b'\\' => '\\',
                                other => {
                                    return Err(err(
                                        i,
                                        format!("unknown escape sequence \\{}", other as char),
                                    ));
                                }
                            });
                            i += 2;
                        }
                        _ => {
                            let rest = &src[i..];
                            let ch = rest.chars().next().unwrap_or_default();
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                i += 1;
                out.push((Tok::Lit(Value::Str(s)), start));
            }
            '`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| err(start, "unterminated raw quoted string".into()))?;
                out.push((Tok::Lit(Value::Str(src[i + 1..i + 1 + end].into())), start));
                i += end + 2;
            }
            '$' => {
                let n = ident_len(&src[i + 1..]);
                out.push((Tok::Var(src[i..i + 1 + n].into()), start));
                i += 1 + n;
            }
            '.' => {
                let n = ident_len(&src[i + 1..]);
                if n == 0 {
                    out.push((Tok::Dot, start));
                } else {
                    out.push((Tok::Field(src[i + 1..i + 1 + n].into(), spaced), start));
                }
                i += 1 + n;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let n = 1 + src[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_'))
                    .unwrap_or(src.len() - i - 1);
                let text = src[i..i + n].replace('_', "");
                let v = if let Ok(v) = text.parse::<i64>() {
                    Value::Int(v)
                } else if let Some(h) = text.strip_prefix("0x") {
                    Value::Int(
                        i64::from_str_radix(h, 16)
                            .map_err(|_| err(start, format!("bad number syntax: {text:?}")))?,
                    )
                } else {
                    Value::Float(
                        text.parse::<f64>()
                            .map_err(|_| err(start, format!("bad number syntax: {text:?}")))?,
                    )
                };
                out.push((Tok::Lit(v), start));
                i += n;
            }
            c if c.is_alphabetic() || c == '_' => {
                let n = ident_len(&src[i..]);
                let word = &src[i..i + n];
                out.push((
                    match word {
                        "true" => Tok::Lit(Value::Bool(true)),
                        "false" => Tok::Lit(Value::Bool(false)),
                        "nil" => Tok::Lit(Value::Nil),
                        _ => Tok::Ident(word.into()),
                    },
                    start,
                ));
                i += n;
            }
            other => return Err(err(start, format!("unexpected {other:?} in command"))),
        }
    }
    Ok(out)
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

// ---------------------------------------------------------------- parsing

#[derive(Clone, Debug)]
enum Arg {
    Func(String),
    Dot,
    Var(String),
    Lit(Value),
    Sub(Box<Pipe>),
    /// An operand and the fields taken from it.
    Chain(Box<Arg>, Vec<String>),
}

#[derive(Clone, Debug)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
    offset: usize,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// One `{{ }}` of the source: its tokens (empty for a comment) and offset.
enum Piece {
    Text(String),
    Action(Vec<(Tok, usize)>, usize),
}

fn pieces(text: &str) -> Res<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while let Some(found) = text[rest..].find("{{") {
        let open = rest + found;
        let mut body_start = open + 2;
        let mut chunk = &text[rest..open];
        if trim_next {
            chunk = chunk.trim_start();
        }
        let trim_left = text[body_start..].starts_with("- ")
            || text[body_start..].starts_with("-\n")
            || text[body_start..].starts_with("-\t");
        if trim_left {
            chunk = chunk.trim_end();
            body_start += 1;
        }
        out.push(Piece::Text(chunk.to_string()));
        let close = find_close(text, body_start).ok_or(Problem {
            offset: open,
            message: "unclosed action: missing }}".into(),
        })?;
        let mut body_end = close;
        trim_next = false;
        let body = &text[body_start..close];
        if body.ends_with(" -") || body.ends_with("\n-") || body.ends_with("\t-") {
            body_end -= 1;
            trim_next = true;
        }
        let body = &text[body_start..body_end];
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(Problem {
                    offset: open,
                    message: "unclosed comment".into(),
                });
            }
        } else {
            let toks = lex(body, body_start)?;
            if toks.is_empty() {
                return Err(Problem {
                    offset: open,
                    message: "missing value for command".into(),
                });
            }
            out.push(Piece::Action(toks, open));
        }
        rest = close + 2;
    }
    let mut tail = &text[rest..];
    if trim_next {
        tail = tail.trim_start();
    }
    out.push(Piece::Text(tail.to_string()));
    Ok(out)
}

/// The `}}` closing the action whose body starts at `from`, outside quoted strings.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i + 1 < b.len() {
        match (quote, b[i]) {
            (None, b'}') if b[i + 1] == b'}' => return Some(i),
            (None, b'"' | b'`') => quote = Some(b[i]),
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse(text: &str) -> Res<Vec<Node>> {
    let mut pieces = pieces(text)?.into_iter();
    let (nodes, end) = block(&mut pieces)?;
    match end {
        None => Ok(nodes),
        Some(Closer::End(at) | Closer::Else(at) | Closer::ElseIf(_, at)) => Err(Problem {
            offset: at,
            message: "unexpected {{end}} or {{else}}".into(),
        }),
    }
}

type Pieces = std::vec::IntoIter<Piece>;

/// What ended a block.
enum Closer {
    /// `{{end}}`.
    End(usize),
    /// `{{else}}`.
    Else(usize),
    /// `{{else if ...}}` or `{{else with ...}}`: the tokens after `else`.
    ElseIf(Vec<(Tok, usize)>, usize),
}

/// Nodes up to an `{{end}}` or `{{else ...}}`, or the end of the template.
fn block(pieces: &mut Pieces) -> Res<(Vec<Node>, Option<Closer>)> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        let (toks, offset) = match piece {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
                continue;
            }
            Piece::Action(toks, offset) => (toks, offset),
        };
        let keyword = match toks.first() {
            Some((Tok::Ident(w), _)) => w.clone(),
            _ => String::new(),
        };
        match keyword.as_str() {
            "end" => return Ok((nodes, Some(Closer::End(offset)))),
            "else" if toks.len() == 1 => return Ok((nodes, Some(Closer::Else(offset)))),
            "else" => return Ok((nodes, Some(Closer::ElseIf(toks[1..].to_vec(), offset)))),
            "if" | "range" | "with" => nodes.push(control(&keyword, &toks[1..], offset, pieces)?),
            "define" | "template" | "block" => {
                return Err(Problem {
                    offset,
                    message: format!(
                        "{{{{{keyword}}}}} is not supported in a MetricTemplate query"
                    ),
                });
            }
            _ => nodes.push(Node::Action(pipeline(&toks, offset)?)),
        }
    }
    Ok((nodes, None))
}

/// An `if`, `range` or `with` from its pipeline to its `{{end}}`; `{{else if x}}` is
/// `{{else}}{{if x}}...` sharing the one `{{end}}`, as in Go.
fn control(keyword: &str, toks: &[(Tok, usize)], offset: usize, pieces: &mut Pieces) -> Res<Node> {
    let pipe = pipeline(toks, offset)?;
    let (body, end) = block(pieces)?;
    let otherwise = match end {
        Some(Closer::End(_)) => Vec::new(),
        Some(Closer::Else(at)) => {
            let (other, end) = block(pieces)?;
            match end {
                Some(Closer::End(_)) => other,
                _ => {
                    return Err(Problem {
                        offset: at,
                        message: "expected {{end}} after {{else}}".into(),
                    });
                }
            }
        }
        Some(Closer::ElseIf(rest, at)) => match rest.first() {
            Some((Tok::Ident(w), _)) if w == "if" || w == "with" => {
                vec![control(&w.clone(), &rest[1..], at, pieces)?]
            }
            _ => {
                return Err(Problem {
                    offset: at,
                    message: "expected {{else}}, {{else if}} or {{else with}}".into(),
                });
            }
        },
        None => {
            return Err(Problem {
                offset,
                message: format!("unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}"),
            });
        }
    };
    Ok(match keyword {
        "if" => Node::If(pipe, body, otherwise),
        "range" => Node::Range(pipe, body, otherwise),
        _ => Node::With(pipe, body, otherwise),
    })
}

fn pipeline(toks: &[(Tok, usize)], offset: usize) -> Res<Pipe> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut rest = toks;
    // `$x :=`, `$x =`, `$i, $v :=`
    let vars: Vec<String> = rest
        .iter()
        .take_while(|(t, _)| matches!(t, Tok::Var(_) | Tok::Comma))
        .filter_map(|(t, _)| match t {
            Tok::Var(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    let n = rest
        .iter()
        .take_while(|(t, _)| matches!(t, Tok::Var(_) | Tok::Comma))
        .count();
    if n > 0 && matches!(rest.get(n), Some((Tok::Declare | Tok::Assign, _))) {
        assign = matches!(rest[n].0, Tok::Assign);
        decl = vars;
        rest = &rest[n + 1..];
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    let mut current = Vec::new();
    while i < rest.len() {
        match &rest[i].0 {
            Tok::Pipe => {
                if current.is_empty() {
                    return Err(Problem {
                        offset,
                        message: "missing command".into(),
                    });
                }
                cmds.push(std::mem::take(&mut current));
                i += 1;
            }
            _ => {
                let (arg, next) = operand(rest, i, offset)?;
                current.push(arg);
                i = next;
            }
        }
    }
    if current.is_empty() {
        return Err(Problem {
            offset,
            message: "missing command".into(),
        });
    }
    cmds.push(current);
    Ok(Pipe {
        decl,
        assign,
        cmds,
        offset,
    })
}

/// One operand from `toks[i]` on, with the fields chained to it; returns where it ends.
fn operand(toks: &[(Tok, usize)], i: usize, offset: usize) -> Res<(Arg, usize)> {
    let (arg, mut next) = match &toks[i].0 {
        Tok::Ident(f) => (Arg::Func(f.clone()), i + 1),
        Tok::Dot => (Arg::Dot, i + 1),
        Tok::Var(v) => (Arg::Var(v.clone()), i + 1),
        Tok::Lit(v) => (Arg::Lit(v.clone()), i + 1),
        Tok::Field(f, _) => (Arg::Chain(Box::new(Arg::Dot), vec![f.clone()]), i + 1),
        Tok::LParen => {
            let mut depth = 0;
            let mut j = i;
            loop {
                match toks.get(j).map(|t| &t.0) {
                    Some(Tok::LParen) => depth += 1,
                    Some(Tok::RParen) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    None => {
                        return Err(Problem {
                            offset,
                            message: "unclosed left paren".into(),
                        });
                    }
                    _ => {}
                }
                j += 1;
            }
            (
                Arg::Sub(Box::new(pipeline(&toks[i + 1..j], offset)?)),
                j + 1,
            )
        }
        other => {
            return Err(Problem {
                offset: toks[i].1,
                message: format!("unexpected {} in operand", describe(other)),
            });
        }
    };
    let mut fields = Vec::new();
    while let Some((Tok::Field(f, false), _)) = toks.get(next) {
        fields.push(f.clone());
        next += 1;
    }
    let arg = match (arg, fields.is_empty()) {
        (a, true) => a,
        (Arg::Chain(base, mut first), false) => {
            first.extend(fields);
            Arg::Chain(base, first)
        }
        (a, false) => Arg::Chain(Box::new(a), fields),
    };
    Ok((arg, next))
}

fn describe(t: &Tok) -> &'static str {
    match t {
        Tok::RParen => "right paren",
        Tok::Declare => "\":=\"",
        Tok::Assign => "\"=\"",
        Tok::Comma => "\",\"",
        Tok::Pipe => "\"|\"",
        _ => "token",
    }
}

// ---------------------------------------------------------------- execution

struct Run<'f> {
    functions: &'f Functions,
    vars: Vec<(String, Value)>,
    /// `.`: nil (Flagger passes no data), or what `with` and `range` set.
    dot: Value,
}

impl Run<'_> {
    fn nodes(&mut self, nodes: &[Node], out: &mut String) -> Res<()> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p)?;
                    if p.decl.is_empty() {
                        out.push_str(&show(&v));
                    }
                }
                Node::If(p, then, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p)?;
                    if truth(&v) {
                        self.nodes(then, out)?;
                    } else {
                        self.nodes(otherwise, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, then, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p)?;
                    if truth(&v) {
                        let outer = std::mem::replace(&mut self.dot, v);
                        self.nodes(then, out)?;
                        self.dot = outer;
                    } else {
                        self.nodes(otherwise, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, otherwise) => {
                    let mark = self.vars.len();
                    let mut plain = p.clone();
                    let decl = std::mem::take(&mut plain.decl);
                    let v = self.pipe(&plain)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Int(n) => (0..n.max(0))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(Problem {
                                offset: p.offset,
                                message: format!("range can't iterate over {}", show(&other)),
                            });
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, out)?;
                    }
                    for (k, v) in items {
                        match decl.as_slice() {
                            [one] => self.vars.push((one.clone(), v.clone())),
                            [key, value] => {
                                self.vars.push((key.clone(), k));
                                self.vars.push((value.clone(), v.clone()));
                            }
                            _ => {}
                        }
                        let outer = std::mem::replace(&mut self.dot, v);
                        self.nodes(body, out)?;
                        self.dot = outer;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &p.cmds {
            value = Some(self.command(cmd, value, p.offset)?);
        }
        let v = value.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.first() {
            if p.assign {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| Problem {
                        offset: p.offset,
                        message: format!("undefined variable: {name}"),
                    })?;
                slot.1 = v.clone();
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, args: &[Arg], piped: Option<Value>, offset: usize) -> Res<Value> {
        let err = |m: String| Problem { offset, message: m };
        match &args[0] {
            Arg::Func(name) => {
                let mut values = Vec::new();
                for a in &args[1..] {
                    values.push(self.arg(a, offset)?);
                }
                values.extend(piped);
                self.call(name, values, offset)
            }
            other => {
                if args.len() > 1 || piped.is_some() {
                    return Err(err(format!(
                        "can't give argument to non-function {}",
                        self.arg(other, offset)
                            .map(|v| show(&v))
                            .unwrap_or_default()
                    )));
                }
                self.arg(other, offset)
            }
        }
    }

    fn arg(&mut self, a: &Arg, offset: usize) -> Res<Value> {
        let err = |m: String| Problem { offset, message: m };
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Dot => Ok(self.dot.clone()),
            Arg::Var(name) => self
                .vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| err(format!("undefined variable: {name}"))),
            Arg::Func(name) => self.call(name, Vec::new(), offset),
            Arg::Sub(p) => self.pipe(p),
            Arg::Chain(base, fields) => {
                let mut v = self.arg(base, offset)?;
                for f in fields {
                    v = match v {
                        Value::Map(mut m) => m
                            .remove(f)
                            .ok_or_else(|| err(format!("map has no entry for key {f:?}")))?,
                        Value::Nil => return Err(err(format!("nil data; no entry for key {f:?}"))),
                        other => {
                            return Err(err(format!(
                                "can't evaluate field {f} in type {}",
                                type_name(&other)
                            )));
                        }
                    };
                }
                Ok(v)
            }
        }
    }

    fn call(&mut self, name: &str, args: Vec<Value>, offset: usize) -> Res<Value> {
        let err = |m: String| Problem { offset, message: m };
        if let Some(v) = self.functions.get(name) {
            if !args.is_empty() {
                return Err(err(format!(
                    "wrong number of args for {name}: want 0 got {}",
                    args.len()
                )));
            }
            return Ok(v.clone());
        }
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                )))
            }
        };
        match name {
            "and" | "or" => {
                if args.is_empty() {
                    return Err(err(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
                let stop = name == "or";
                let last = args.len() - 1;
                for (i, a) in args.into_iter().enumerate() {
                    if truth(&a) == stop || i == last {
                        return Ok(a);
                    }
                }
                Ok(Value::Nil)
            }
            "not" => {
                want(1)?;
                Ok(Value::Bool(!truth(&args[0])))
            }
            "len" => {
                want(1)?;
                Ok(Value::Int(match &args[0] {
                    Value::Str(s) => s.len(),
                    Value::Map(m) => m.len(),
                    Value::List(l) => l.len(),
                    other => return Err(err(format!("len of type {}", type_name(other)))),
                } as i64))
            }
            "index" => {
                let mut it = args.into_iter();
                let mut v = it.next().ok_or_else(|| {
                    err("wrong number of args for index: want at least 1 got 0".into())
                })?;
                for k in it {
                    v = match (v, k) {
                        (Value::Map(mut m), Value::Str(k)) => m
                            .remove(&k)
                            .ok_or_else(|| err(format!("map has no entry for key {k:?}")))?,
                        (Value::List(l), Value::Int(i)) => l
                            .get(usize::try_from(i).unwrap_or(usize::MAX))
                            .cloned()
                            .ok_or_else(|| {
                                err(format!("error calling index: index out of range: {i}"))
                            })?,
                        (v, _) => {
                            return Err(err(format!("can't index item of type {}", type_name(&v))));
                        }
                    };
                }
                Ok(v)
            }
            "print" => Ok(Value::Str(sprint(&args))),
            "println" => Ok(Value::Str(format!(
                "{}\n",
                args.iter().map(show).collect::<Vec<_>>().join(" ")
            ))),
            "printf" => {
                let mut it = args.into_iter();
                match it.next() {
                    Some(Value::Str(f)) => Ok(Value::Str(printf(&f, &it.collect::<Vec<_>>()))),
                    _ => Err(err("printf needs a format string".into())),
                }
            }
            "eq" => {
                let mut it = args.into_iter();
                let first = it
                    .next()
                    .ok_or_else(|| err("missing argument for comparison".into()))?;
                let rest: Vec<Value> = it.collect();
                if rest.is_empty() {
                    return Err(err("missing argument for comparison".into()));
                }
                Ok(Value::Bool(rest.iter().any(|r| equal(&first, r))))
            }
            "ne" => {
                want(2)?;
                Ok(Value::Bool(!equal(&args[0], &args[1])))
            }
            "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let order = compare(&args[0], &args[1])
                    .ok_or_else(|| err("incompatible types for comparison".into()))?;
                use std::cmp::Ordering::*;
                Ok(Value::Bool(match name {
                    "lt" => order == Less,
                    "le" => order != Greater,
                    "gt" => order == Greater,
                    _ => order != Less,
                }))
            }
            "html" => Ok(Value::Str(
                sprint(&args)
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&#34;")
                    .replace('\'', "&#39;"),
            )),
            "js" => Ok(Value::Str(
                sprint(&args)
                    .replace('\\', "\\\\")
                    .replace('\'', "\\'")
                    .replace('"', "\\\"")
                    .replace('<', "\\u003C")
                    .replace('>', "\\u003E"),
            )),
            "urlquery" => Ok(Value::Str(
                sprint(&args)
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            (b as char).to_string()
                        }
                        b' ' => "+".into(),
                        other => format!("%{other:02X}"),
                    })
                    .collect(),
            )),
            _ => Err(err(format!("function {name:?} not defined"))),
        }
    }
}

fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::List(l) => !l.is_empty(),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            number(a)?.partial_cmp(&number(b)?)
        }
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Map(_) => "map[string]string",
        Value::List(_) => "[]interface {}",
    }
}

/// A value as Go's `fmt` prints it with `%v`.
fn show(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) => s.clone(),
        Value::Map(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", show(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::List(l) => format!("[{}]", l.iter().map(show).collect::<Vec<_>>().join(" ")),
    }
}

/// Go's `%v` of a float64: the shortest form, with an exponent from 1e21 up.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f != 0.0 && (f.abs() >= 1e21 || f.abs() < 1e-4) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    format!("{f}")
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&show(a));
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs queries use: `%s %v %d %q %f %g %e %x %t %%`, with
/// width and precision.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' || n == '-' || n == '+' || n == ' ' || n == '#' {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let (left, rest) = match spec.strip_prefix('-') {
            Some(r) => (true, r.to_string()),
            None => (false, spec.clone()),
        };
        let (width, precision) = match rest.split_once('.') {
            Some((w, p)) => (
                w.parse::<usize>().ok(),
                Some(p.parse::<usize>().unwrap_or(0)),
            ),
            None => (rest.parse::<usize>().ok(), None),
        };
        let text = match (verb, arg) {
            ('d', Value::Int(i)) => i.to_string(),
            ('d', Value::Float(f)) => format!("%!d(float64={})", go_float(*f)),
            ('f' | 'F', a) => match number(a) {
                Some(n) => format!("{:.*}", precision.unwrap_or(6), n),
                None => format!("%!f({}={})", type_name(a), show(a)),
            },
            ('e', a) => match number(a) {
                Some(n) => {
                    let s = format!("{:.*e}", precision.unwrap_or(6), n);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                None => format!("%!e({}={})", type_name(a), show(a)),
            },
            ('g', a) => number(a).map(go_float).unwrap_or_else(|| show(a)),
            ('q', Value::Str(s)) => format!("{s:?}"),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Value::Bool(b)) => b.to_string(),
            ('s' | 'v', a) => {
                let s = show(a);
                match precision {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            (v, a) => format!("%!{v}({}={})", type_name(a), show(a)),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    for extra in args {
        out.push_str(&format!("%!(EXTRA {}={})", type_name(extra), show(extra)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Functions {
        let vars: BTreeMap<String, Value> = [
            ("percentile", "0.99"),
            ("gateway", "public-gateway"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.into())))
        .collect();
        [
            ("name", "podinfo"),
            ("namespace", "test"),
            ("target", "podinfo"),
            ("service", "podinfo"),
            ("ingress", "podinfo"),
            ("route", "podinfo"),
            ("interval", "1m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.into())))
        .chain(std::iter::once(("variables".to_string(), Value::Map(vars))))
        .collect()
    }

    fn ok(text: &str) -> String {
        render(text, &model()).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn problem(text: &str) -> String {
        render(text, &model()).expect_err(text).message
    }

    #[test]
    fn the_models_functions_and_variables() {
        assert_eq!(
            ok(
                r#"sum(rate(x{namespace="{{ namespace }}",pod=~"{{ target }}-[0-9a-zA-Z]+"}[{{ interval }}]))"#
            ),
            r#"sum(rate(x{namespace="test",pod=~"podinfo-[0-9a-zA-Z]+"}[1m]))"#
        );
        assert_eq!(
            ok("histogram_quantile({{ variables.percentile }}, x)"),
            "histogram_quantile(0.99, x)"
        );
        assert_eq!(
            ok("{{name}}.{{namespace}}/{{service}}/{{ingress}}/{{route}}"),
            "podinfo.test/podinfo/podinfo/podinfo"
        );
        assert_eq!(ok("{{ index variables \"gateway\" }}"), "public-gateway");
    }

    #[test]
    fn control_structures_variables_and_pipelines() {
        assert_eq!(
            ok("{{ if variables.empty }}a{{ else if eq namespace \"test\" }}b{{ else }}c{{ end }}"),
            "b"
        );
        assert_eq!(
            ok("{{ if ne target \"podinfo\" }}x{{ else }}y{{ end }}"),
            "y"
        );
        assert_eq!(
            ok("{{ $ns := namespace }}{{ $ns }}-{{ $ns = \"prod\" }}{{ $ns }}"),
            "test-prod"
        );
        assert_eq!(
            ok("{{ with variables.gateway }}gw={{ . }}{{ end }}"),
            "gw=public-gateway"
        );
        assert_eq!(
            ok("{{ range $k, $v := variables }}{{ $k }}={{ $v }};{{ end }}"),
            "empty=;gateway=public-gateway;percentile=0.99;"
        );
        assert_eq!(
            ok("{{ target | printf \"%s-primary\" }}"),
            "podinfo-primary"
        );
        assert_eq!(
            ok("{{ printf \"%s.%s.svc:%d\" service namespace 9898 }}"),
            "podinfo.test.svc:9898"
        );
        assert_eq!(
            ok("{{ printf \"%.2f|%5s|%-3d|%q\" 1.5 \"ab\" 7 \"x\" }}"),
            "1.50|   ab|7  |\"x\""
        );
        assert_eq!(ok("{{ (printf \"%s\" target) | len }}"), "7");
        assert_eq!(
            ok("{{ and true namespace }} {{ or \"\" 0 interval }} {{ not false }}"),
            "test 1m true"
        );
        assert_eq!(
            ok("{{ if and (eq namespace \"test\") (gt 3 2) }}both{{ end }}"),
            "both"
        );
        assert_eq!(
            ok("{{ print 1 2 \"a\" 3 }} {{ urlquery \"a b&c\" }}"),
            "1 2a3 a+b%26c"
        );
    }

    #[test]
    fn trimming_comments_and_literals() {
        assert_eq!(ok("a  {{- \" b \" -}}  c"), "a b c");
        assert_eq!(
            ok("x {{/* a comment */}} y {{- /* trimmed */ -}} z"),
            "x  yz"
        );
        assert_eq!(ok("{{ `raw {{ }}` }}"), "raw {{ }}");
        assert_eq!(ok("{{ \"}}\" }}"), "}}");
        assert_eq!(
            ok("{{ 1.5 }} {{ 10 }} {{ true }} {{ 0x10 }}"),
            "1.5 10 true 16"
        );
    }

    #[test]
    fn errors_say_what_go_says() {
        assert_eq!(problem("{{ bogus }}"), "function \"bogus\" not defined");
        assert_eq!(
            problem("{{ variables.missing }}"),
            "map has no entry for key \"missing\""
        );
        assert_eq!(
            problem("{{ .Name }}"),
            "nil data; no entry for key \"Name\""
        );
        assert_eq!(problem("{{ target "), "unclosed action: missing }}");
        assert!(problem("{{ if true }}x").starts_with("unexpected EOF"));
        assert!(problem("{{ end }}").starts_with("unexpected {{end}}"));
        assert_eq!(problem("{{ $nope }}"), "undefined variable: $nope");
        assert_eq!(
            problem("{{ namespace 1 }}"),
            "wrong number of args for namespace: want 0 got 1"
        );
        assert!(problem("{{ define \"x\" }}{{ end }}").contains("not supported"));
        let at = render("ab {{ bogus }}", &model())
            .expect_err("offset")
            .offset;
        assert_eq!(at, 3, "the action's offset");
    }
}
