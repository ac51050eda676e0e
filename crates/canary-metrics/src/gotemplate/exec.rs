//! Running the nodes: variables, `.`, builtins and the model's functions.

use super::*;

pub(super) struct Run<'f> {
    pub(super) functions: &'f Functions,
    pub(super) vars: Vec<(String, Value)>,
    /// `.`: nil (Flagger passes no data), or what `with` and `range` set.
    pub(super) dot: Value,
}

impl Run<'_> {
    pub(super) fn nodes(&mut self, nodes: &[Node], out: &mut String) -> Res<()> {
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
