//! Draws a transactional anomaly's cycle graph as SVG, in Rust: no
//! Graphviz needed. The input is the dot text the txn checker writes
//! (`check::txn`'s explanation graphs: a graph label, one boxed node per
//! transaction with a multi-line label, one labelled, coloured edge per
//! dependency); only that subset of dot is read. Nodes sit on a circle in
//! the order they are declared (the cycle's order), each edge is a curve
//! bowed to its right, so the two directions between a pair of
//! transactions never overlap, with an arrowhead and its label in the
//! edge's colour at the middle.

use std::fmt::Write as _;

/// A node: its name and label lines.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    name: String,
    lines: Vec<String>,
}

/// An edge: endpoints, label and colour.
#[derive(Debug, Clone, PartialEq)]
struct Edge {
    from: String,
    to: String,
    label: String,
    color: String,
    tooltip: String,
}

/// The parts of a graph this module draws.
#[derive(Debug, Default, PartialEq)]
struct Graph {
    label: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// Width of a monospace character at the node font size, in px.
const CHAR_W: f64 = 7.2;
/// Height of a label line, in px.
const LINE_H: f64 = 15.0;
/// Padding inside a node's box.
const PAD: f64 = 8.0;
/// Longest label line drawn; longer lines end in `…` (the full text is
/// beside the graph on the page and in the dot file).
const MAX_CHARS: usize = 60;

/// The SVG drawing of `dot` (the txn checker's dot subset), or `None` when
/// it holds no node.
pub fn draw(dot: &str) -> Option<String> {
    let g = parse(dot);
    if g.nodes.is_empty() {
        return None;
    }
    Some(render(&g))
}

/// Reads `key="value"` pairs (values with dot's `\"`, `\\` and `\n`
/// escapes) from an attribute list.
fn attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ']')).collect();
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') | Some('l') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',' && *c != ']')).collect();
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

fn parse(dot: &str) -> Graph {
    let mut g = Graph::default();
    for line in dot.lines().map(str::trim) {
        let get = |list: &[(String, String)], k: &str| {
            list.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(rest) = line.strip_prefix("label=") {
            g.label = attrs(&format!("label={}", rest.trim_end_matches(';')))
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default();
            continue;
        }
        let Some((head, list)) = line.split_once(" [") else {
            continue;
        };
        let list = attrs(list.trim_end_matches(';').trim_end_matches(']'));
        if let Some((from, to)) = head.split_once(" -> ") {
            g.edges.push(Edge {
                from: from.trim().to_string(),
                to: to.trim().to_string(),
                label: get(&list, "label").unwrap_or_default(),
                color: get(&list, "color").unwrap_or_else(|| "#555555".into()),
                tooltip: get(&list, "tooltip").unwrap_or_default(),
            });
        } else if head != "node" && head != "edge" && head != "graph" {
            let name = head.trim().to_string();
            let label = get(&list, "label").unwrap_or_else(|| name.clone());
            g.nodes.push(Node {
                name,
                lines: label.lines().map(str::to_string).collect(),
            });
        }
    }
    g
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A colour safe to put in an attribute: `#rrggbb` or a plain name.
fn color(c: &str) -> &str {
    let ok = c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#');
    if ok && !c.is_empty() {
        c
    } else {
        "#555555"
    }
}

fn clip(line: &str) -> String {
    if line.chars().count() <= MAX_CHARS {
        line.to_string()
    } else {
        let mut s: String = line.chars().take(MAX_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// Where the segment from a box's centre `(cx, cy)` towards `(tx, ty)`
/// leaves the box of half-sizes `(hw, hh)`.
fn exit(cx: f64, cy: f64, hw: f64, hh: f64, tx: f64, ty: f64) -> (f64, f64) {
    let (dx, dy) = (tx - cx, ty - cy);
    let sx = if dx.abs() > 1e-9 {
        hw / dx.abs()
    } else {
        f64::INFINITY
    };
    let sy = if dy.abs() > 1e-9 {
        hh / dy.abs()
    } else {
        f64::INFINITY
    };
    let s = sx.min(sy).min(1.0);
    (cx + dx * s, cy + dy * s)
}

fn render(g: &Graph) -> String {
    let n = g.nodes.len();
    // Box sizes.
    let sizes: Vec<(f64, f64)> = g
        .nodes
        .iter()
        .map(|node| {
            let chars = node
                .lines
                .iter()
                .map(|l| clip(l).chars().count())
                .max()
                .unwrap_or(1);
            (
                chars as f64 * CHAR_W + 2.0 * PAD,
                node.lines.len().max(1) as f64 * LINE_H + 2.0 * PAD,
            )
        })
        .collect();
    let max_w = sizes.iter().map(|s| s.0).fold(0.0, f64::max);
    let max_h = sizes.iter().map(|s| s.1).fold(0.0, f64::max);
    // Neighbours on the circle must not overlap: the chord between two
    // centres is at least the larger box dimension plus room for a label.
    let gap = 90.0;
    let radius = if n == 1 {
        0.0
    } else if n == 2 {
        (max_w + gap) / 2.0
    } else {
        let chord = max_w.max(max_h) + gap;
        chord / (2.0 * (std::f64::consts::PI / n as f64).sin())
    };
    // Positions: the first node on the left, then clockwise... for two
    // nodes, left and right; for more, starting at the top.
    let pos: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = if n == 2 {
                std::f64::consts::PI * (1.0 + i as f64)
            } else {
                -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64
            };
            (radius * a.cos(), radius * a.sin())
        })
        .collect();
    let index = |name: &str| g.nodes.iter().position(|nd| nd.name == name);
    // Bounds: boxes, plus room for the bowed edges and their labels.
    let margin = 70.0;
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for (i, &(x, y)) in pos.iter().enumerate() {
        let (w, h) = sizes[i];
        x0 = x0.min(x - w / 2.0);
        x1 = x1.max(x + w / 2.0);
        y0 = y0.min(y - h / 2.0);
        y1 = y1.max(y + h / 2.0);
    }
    let title_h = if g.label.is_empty() { 0.0 } else { 24.0 };
    let (x0, y0) = (x0 - margin, y0 - margin - title_h);
    let (x1, y1) = (x1 + margin, y1 + margin);
    let (width, height) = (x1 - x0, y1 - y0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"cycle\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"{x0:.1} {y0:.1} {width:.1} {height:.1}\" font-family=\"monospace\" font-size=\"12\">"
    );
    if !g.label.is_empty() {
        let _ = writeln!(
            s,
            "<title>{}</title>\n<text x=\"0\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            esc(&g.label),
            y0 + 18.0,
            esc(&g.label)
        );
    }
    // One arrowhead marker per colour.
    let mut colors: Vec<&str> = g.edges.iter().map(|e| color(&e.color)).collect();
    colors.sort_unstable();
    colors.dedup();
    s.push_str("<defs>");
    for (i, c) in colors.iter().enumerate() {
        let _ = write!(
            s,
            "<marker id=\"arrow{i}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{c}\"/></marker>"
        );
    }
    s.push_str("</defs>\n");
    // Edges first, so boxes and labels sit on top of lines.
    let mut labels = String::new();
    for (k, e) in g.edges.iter().enumerate() {
        let (Some(a), Some(b)) = (index(&e.from), index(&e.to)) else {
            continue;
        };
        let c = color(&e.color);
        let marker = colors.iter().position(|x| *x == c).unwrap_or(0);
        let (ax, ay) = pos[a];
        let (bx, by) = pos[b];
        // Parallel edges (same pair, same direction) bow further out.
        let nth = g.edges[..k]
            .iter()
            .filter(|o| o.from == e.from && o.to == e.to)
            .count() as f64;
        let (lx, ly, path) = if a == b {
            // A self-loop: a loop above the box.
            let (w, h) = sizes[a];
            let top = ay - h / 2.0;
            let r = 22.0 + 14.0 * nth;
            (
                ax + w / 4.0 + 6.0,
                top - 2.0 * r,
                format!(
                    "M{:.1},{top:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{top:.1}",
                    ax - w / 4.0,
                    ax - w / 4.0,
                    top - 2.0 * r,
                    ax + w / 4.0,
                    top - 2.0 * r,
                    ax + w / 4.0
                ),
            )
        } else {
            let (dx, dy) = (bx - ax, by - ay);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            // To the right of the direction of travel (y grows downwards).
            let (px, py) = (-dy / len, dx / len);
            let bow = 0.18 * len + 26.0 * nth + 18.0;
            let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
            let (cx, cy) = (mx + px * bow, my + py * bow);
            let (wa, ha) = sizes[a];
            let (wb, hb) = sizes[b];
            let (sx, sy) = exit(ax, ay, wa / 2.0, ha / 2.0, cx, cy);
            let (tx, ty) = exit(bx, by, wb / 2.0 + 2.0, hb / 2.0 + 2.0, cx, cy);
            // The label sits on the curve's middle (t = 1/2).
            let (lx, ly) = (
                0.25 * sx + 0.5 * cx + 0.25 * tx,
                0.25 * sy + 0.5 * cy + 0.25 * ty,
            );
            (
                lx,
                ly,
                format!("M{sx:.1},{sy:.1} Q{cx:.1},{cy:.1} {tx:.1},{ty:.1}"),
            )
        };
        let _ = writeln!(
            s,
            "<path class=\"edge\" d=\"{path}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" marker-end=\"url(#arrow{marker})\"><title>{}</title></path>",
            esc(&e.tooltip)
        );
        let _ = writeln!(
            labels,
            "<text class=\"edge-label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{c}\" stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">{}<title>{}</title></text>",
            ly + 4.0,
            esc(&e.label),
            esc(&e.tooltip)
        );
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let (w, h) = sizes[i];
        let _ = write!(
            s,
            "<g class=\"node\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"4\" fill=\"#fffdf5\" stroke=\"#333\"/>",
            x - w / 2.0,
            y - h / 2.0
        );
        for (j, line) in node.lines.iter().enumerate() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\"{}>{}</text>",
                x - w / 2.0 + PAD,
                y - h / 2.0 + PAD + LINE_H * (j as f64 + 1.0) - 3.0,
                if j == 0 { " font-weight=\"bold\"" } else { "" },
                esc(&clip(line))
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str(&labels);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const G2: &str = "digraph \"G2-item\" {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  label=\"G2-item\";\n  T1 [label=\"T1\\nprocess 0, ok, events 0-2\\nr x [], append y 1\"];\n  T2 [label=\"T2\\nprocess 1, ok, events 1-3\\nr y [], append x 2\"];\n  T1 -> T2 [label=\"rw \\\"x\\\"\", color=\"#c0392b\", fontcolor=\"#c0392b\", tooltip=\"T1 read x before <T2> appended\"];\n  T2 -> T1 [label=\"rw \\\"y\\\"\", color=\"#c0392b\", fontcolor=\"#c0392b\", tooltip=\"T2 read y\"];\n}\n";

    #[test]
    fn the_checkers_dot_is_read_back_exactly() {
        let g = parse(G2);
        assert_eq!(g.label, "G2-item");
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(
            g.nodes[0].lines,
            vec!["T1", "process 0, ok, events 0-2", "r x [], append y 1"]
        );
        assert_eq!(g.edges.len(), 2);
        assert_eq!(g.edges[0].from, "T1");
        assert_eq!(g.edges[0].to, "T2");
        assert_eq!(g.edges[0].label, "rw \"x\"");
        assert_eq!(g.edges[0].color, "#c0392b");
        assert_eq!(g.edges[0].tooltip, "T1 read x before <T2> appended");
    }

    #[test]
    fn the_svg_shows_every_transaction_and_edge_label_escaped() {
        let svg = draw(G2).expect("a graph");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            ">T1<",
            ">T2<",
            "r x [], append y 1",
            "r y [], append x 2",
            ">rw &quot;x&quot;<",
            ">rw &quot;y&quot;<",
            "T1 read x before &lt;T2&gt; appended",
        ] {
            assert!(svg.contains(text), "{text} missing:\n{svg}");
        }
        assert_eq!(svg.matches("class=\"edge\"").count(), 2);
        assert_eq!(svg.matches("marker-end").count(), 2);
        // Well-formed XML.
        roxmltree::Document::parse(&svg).expect("well-formed svg");
        assert!(draw("digraph \"x\" {\n}\n").is_none());
    }

    #[test]
    fn the_two_directions_between_a_pair_bow_to_opposite_sides() {
        let svg = draw(G2).expect("a graph");
        let ys: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<text class=\"edge-label\""))
            .map(|l| {
                let y = l.split(" y=\"").nth(1).and_then(|r| r.split('"').next());
                y.and_then(|v| v.parse().ok()).expect("label y")
            })
            .collect();
        assert_eq!(ys.len(), 2);
        // One label above the line between the boxes, one below: they
        // never overlap.
        assert!(ys[0] * ys[1] < 0.0, "{ys:?}");
        assert!((ys[0] - ys[1]).abs() > 30.0, "{ys:?}");
    }
}
