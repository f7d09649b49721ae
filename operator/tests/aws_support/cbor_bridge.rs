//! A relay in front of the emulator for CloudWatch. aws-sdk-cloudwatch speaks Smithy RPC v2
//! CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`), which moto 5.2.5 does
//! not answer (404); moto speaks CloudWatch's JSON protocol (`X-Amz-Target:
//! GraniteServiceVersion20100801.<Op>`). The bridge turns each CBOR request into the same
//! request in JSON and the JSON answer back into CBOR (timestamps as CBOR tag 1). Every other
//! request (S3, DynamoDB, ...) passes through unchanged, so one endpoint serves a whole test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use minicbor::data::{Tag, Type};
use serde_json::{Map, Value};

const CBOR_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// Starts the bridge; returns its URL.
pub fn start(upstream: &str) -> String {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind bridge");
    let url = format!("http://{}", listener.local_addr().expect("bridge address"));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || serve(client, &upstream));
        }
    });
    url
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = header(&headers, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Status, headers and body of an answer.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends one request upstream with `Connection: close`.
fn forward(upstream: &str, req: &Request) -> Option<Answer> {
    let mut server = TcpStream::connect(upstream).ok()?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path).into_bytes();
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&req.body);
    server.write_all(&out).ok()?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse::<u16>()
        .ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers, body))
}

fn respond(client: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (k, v) in headers {
        if ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    let _ = client.write_all(&out);
}

fn serve(client: TcpStream, upstream: &str) {
    let Ok(mut writer) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    let Some(mut req) = read_request(&mut reader) else {
        return;
    };
    let Some(op) = req.path.strip_prefix(CBOR_PREFIX).map(str::to_string) else {
        if let Some((status, headers, body)) = forward(upstream, &req) {
            respond(&mut writer, status, &headers, &body);
        }
        return;
    };
    let json = if req.body.is_empty() {
        Value::Object(Map::new())
    } else {
        let mut d = minicbor::Decoder::new(&req.body);
        decode(&mut d).unwrap_or(Value::Null)
    };
    req.path = "/".into();
    req.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("smithy-protocol")
    });
    req.headers
        .push(("Content-Type".into(), "application/x-amz-json-1.0".into()));
    req.headers.push((
        "X-Amz-Target".into(),
        format!("GraniteServiceVersion20100801.{op}"),
    ));
    req.body = serde_json::to_vec(&json).unwrap_or_default();
    let Some((status, _, body)) = forward(upstream, &req) else {
        return;
    };
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Object(Map::new()));
    let mut out = Vec::new();
    let mut e = minicbor::Encoder::new(&mut out);
    encode(&mut e, None, &answer);
    respond(
        &mut writer,
        status,
        &[
            ("Content-Type".into(), "application/cbor".into()),
            ("smithy-protocol".into(), "rpc-v2-cbor".into()),
        ],
        &out,
    );
}

fn at_break(d: &minicbor::Decoder<'_>) -> bool {
    d.input().get(d.position()) == Some(&0xff)
}

fn decode(d: &mut minicbor::Decoder<'_>) -> Result<Value, minicbor::decode::Error> {
    Ok(match d.datatype()? {
        Type::Bool => Value::Bool(d.bool()?),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => Value::from(d.i64()?),
        Type::F16 | Type::F32 | Type::F64 => Value::from(d.f64()?),
        Type::String => Value::String(d.str()?.to_string()),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter()? {
                s.push_str(part?);
            }
            Value::String(s)
        }
        Type::Array | Type::ArrayIndef => {
            let mut items = Vec::new();
            match d.array()? {
                Some(n) => {
                    for _ in 0..n {
                        items.push(decode(d)?);
                    }
                }
                None => {
                    while !at_break(d) {
                        items.push(decode(d)?);
                    }
                    d.set_position(d.position() + 1);
                }
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let mut map = Map::new();
            let mut entry = |d: &mut minicbor::Decoder<'_>| -> Result<(), minicbor::decode::Error> {
                let key = match decode(d)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let value = decode(d)?;
                map.insert(key, value);
                Ok(())
            };
            match d.map()? {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => {
                    while !at_break(d) {
                        entry(d)?;
                    }
                    d.set_position(d.position() + 1);
                }
            }
            Value::Object(map)
        }
        Type::Tag => {
            d.tag()?;
            decode(d)?
        }
        _ => {
            d.skip()?;
            Value::Null
        }
    })
}

/// JSON to CBOR; members named `*Timestamp` become CBOR timestamps (tag 1), as the protocol has
/// them, and the double `Threshold` stays a float even when integral.
fn encode(e: &mut minicbor::Encoder<&mut Vec<u8>>, key: Option<&str>, v: &Value) {
    let timestamp = key.is_some_and(|k| k.ends_with("Timestamp"));
    let double = key.is_some_and(|k| k == "Threshold");
    let result = match v {
        Value::Null => e.null().map(|_| ()),
        Value::Bool(b) => e.bool(*b).map(|_| ()),
        Value::Number(n) if timestamp => e
            .tag(Tag::new(1))
            .and_then(|e| e.f64(n.as_f64().unwrap_or_default()))
            .map(|_| ()),
        Value::Number(n) if double || n.is_f64() => {
            e.f64(n.as_f64().unwrap_or_default()).map(|_| ())
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => e.i64(i).map(|_| ()),
            None => e.u64(n.as_u64().unwrap_or_default()).map(|_| ()),
        },
        Value::String(s) => e.str(s).map(|_| ()),
        Value::Array(items) => {
            let r = e.array(items.len() as u64).map(|_| ());
            for item in items {
                encode(e, key, item);
            }
            r
        }
        Value::Object(map) => {
            let present: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !v.is_null()).collect();
            let r = e.map(present.len() as u64).map(|_| ());
            for (k, v) in present {
                let _ = e.str(k);
                encode(e, Some(k), v);
            }
            r
        }
    };
    result.expect("encoding into a Vec cannot fail");
}
