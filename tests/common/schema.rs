//! Checks a rendered response against the EC2 model in schemas/.
//!
//! Every element under `<{Action}Response>` must be a member of the action's
//! output shape (by its `locationName`), lists must hold `<item>` elements of
//! the member shape, scalars must hold text only, booleans must be
//! `true`/`false` and timestamps `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;
use std::sync::OnceLock;

struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element {
        name: String::new(),
        text: String::new(),
        children: vec![],
    }];
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?
        {
            Event::Start(start) => stack.push(Element {
                name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                text: String::new(),
                children: vec![],
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    text: String::new(),
                    children: vec![],
                };
                stack.last_mut().unwrap().children.push(element);
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| e.to_string())?;
                stack.last_mut().unwrap().text.push_str(text.trim());
            }
            Event::End(_) => {
                let element = stack.pop().unwrap();
                stack
                    .last_mut()
                    .ok_or("unbalanced XML")?
                    .children
                    .push(element);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().ok_or("empty document")?;
    if !stack.is_empty() || document.children.len() != 1 {
        return Err("expected exactly one root element".into());
    }
    Ok(document.children.remove(0))
}

fn models() -> &'static Vec<Value> {
    static MODELS: OnceLock<Vec<Value>> = OnceLock::new();
    MODELS.get_or_init(|| {
        ["ec2-2016-11-15.trimmed.json", "gateway-admin.json"]
            .iter()
            .map(|file| {
                let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
            })
            .collect()
    })
}

fn check(model: &Value, shape_name: &str, element: &Element, path: &str) -> Result<(), String> {
    let shape = &model["shapes"][shape_name];
    match shape["type"].as_str() {
        Some("structure") => {
            if !element.text.is_empty() {
                return Err(format!("{path}: structure holds text '{}'", element.text));
            }
            for child in &element.children {
                let member = shape["members"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(name, m)| {
                        m["locationName"]
                            .as_str()
                            .map_or(*name == &child.name, |l| l == child.name)
                    });
                match member {
                    Some((_, m)) => check(
                        model,
                        m["shape"].as_str().unwrap(),
                        child,
                        &format!("{path}/{}", child.name),
                    )?,
                    None => {
                        return Err(format!(
                            "{path}: <{}> is not a member of {shape_name}",
                            child.name
                        ))
                    }
                }
            }
            Ok(())
        }
        Some("list") => {
            let member = &shape["member"];
            let item_name = member["locationName"].as_str().unwrap_or("member");
            for child in &element.children {
                if child.name != item_name {
                    return Err(format!(
                        "{path}: list element <{}> should be <{item_name}>",
                        child.name
                    ));
                }
                check(
                    model,
                    member["shape"].as_str().unwrap(),
                    child,
                    &format!("{path}/{item_name}"),
                )?;
            }
            Ok(())
        }
        Some(scalar) => {
            if !element.children.is_empty() {
                return Err(format!("{path}: scalar {scalar} has child elements"));
            }
            let text = element.text.as_str();
            let valid = match scalar {
                "boolean" => text == "true" || text == "false",
                "integer" | "long" => text.parse::<i64>().is_ok(),
                "timestamp" => {
                    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok()
                        && text.len() == 24
                }
                _ => true,
            };
            if valid {
                Ok(())
            } else {
                Err(format!("{path}: '{text}' is not a valid {scalar}"))
            }
        }
        None => Err(format!("{path}: shape {shape_name} is not in schemas/")),
    }
}

/// Validates the success response of `action`.
pub fn validate(action: &str, xml: &str) -> Result<(), String> {
    let root = parse(xml)?;
    if root.name != format!("{action}Response") {
        return Err(format!(
            "root is <{}>, expected <{action}Response>",
            root.name
        ));
    }
    let model = models()
        .iter()
        .find(|m| m["operations"].get(action).is_some())
        .ok_or_else(|| {
            format!("{action} is not in schemas/: add it to supported-operations.txt")
        })?;
    let output = model["operations"][action]["output"]["shape"]
        .as_str()
        .unwrap_or("ReturnResult");
    let first = root.children.first().ok_or("empty response")?;
    if first.name != "requestId" || first.text.is_empty() {
        return Err("the first child must be a non-empty <requestId>".into());
    }
    let rest = Element {
        name: root.name.clone(),
        text: String::new(),
        children: root.children[1..].iter().map(clone).collect(),
    };
    if model["shapes"].get(output).is_none() {
        // Operations without an output shape answer <return>true</return>.
        return match rest.children.as_slice() {
            [only] if only.name == "return" && only.text == "true" => Ok(()),
            _ => Err(format!(
                "{action} has no output shape: expected <return>true</return>"
            )),
        };
    }
    check(model, output, &rest, action)
}

fn clone(element: &Element) -> Element {
    Element {
        name: element.name.clone(),
        text: element.text.clone(),
        children: element.children.iter().map(clone).collect(),
    }
}
