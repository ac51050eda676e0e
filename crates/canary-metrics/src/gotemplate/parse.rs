//! The template's text and actions into nodes: pipelines, `if`, `range`, `with`.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Arg {
    Func(String),
    Dot,
    Var(String),
    Lit(Value),
    Sub(Box<Pipe>),
    /// An operand and the fields taken from it.
    Chain(Box<Arg>, Vec<String>),
}

#[derive(Clone, Debug)]
pub(super) struct Pipe {
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Vec<Arg>>,
    pub(super) offset: usize,
}

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// One `{{ }}` of the source: its tokens (empty for a comment) and offset.
pub(super) enum Piece {
    Text(String),
    Action(Vec<(Tok, usize)>, usize),
}

pub(super) fn pieces(text: &str) -> Res<Vec<Piece>> {
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
pub(super) fn find_close(text: &str, from: usize) -> Option<usize> {
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

pub(super) fn parse(text: &str) -> Res<Vec<Node>> {
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

pub(super) type Pieces = std::vec::IntoIter<Piece>;

/// What ended a block.
pub(super) enum Closer {
    /// `{{end}}`.
    End(usize),
    /// `{{else}}`.
    Else(usize),
    /// `{{else if ...}}` or `{{else with ...}}`: the tokens after `else`.
    ElseIf(Vec<(Tok, usize)>, usize),
}

/// Nodes up to an `{{end}}` or `{{else ...}}`, or the end of the template.
pub(super) fn block(pieces: &mut Pieces) -> Res<(Vec<Node>, Option<Closer>)> {
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
pub(super) fn control(
    keyword: &str,
    toks: &[(Tok, usize)],
    offset: usize,
    pieces: &mut Pieces,
) -> Res<Node> {
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

pub(super) fn pipeline(toks: &[(Tok, usize)], offset: usize) -> Res<Pipe> {
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
pub(super) fn operand(toks: &[(Tok, usize)], i: usize, offset: usize) -> Res<(Arg, usize)> {
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
