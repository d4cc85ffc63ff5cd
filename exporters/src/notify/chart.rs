//! A small line chart of a statistic over time, as PNG bytes for the email: a polyline of the
//! values, a dashed threshold line and a light frame, on a white canvas. The PNG encoder is
//! the few lines the format needs (8-bit RGB, one zlib IDAT chunk, CRC-32 per chunk).

use std::io::Write;
use std::time::UNIX_EPOCH;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use super::alert::Series;

/// Chart width in pixels.
pub const WIDTH: u32 = 480;
/// Chart height in pixels.
pub const HEIGHT: u32 = 160;
/// Empty border around the plot area.
const MARGIN: i64 = 8;

/// Canvas background.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// Plot frame and grid.
pub const FRAME: [u8; 3] = [208, 212, 218];
/// The statistic.
pub const LINE: [u8; 3] = [31, 94, 196];
/// The threshold.
pub const THRESHOLD: [u8; 3] = [214, 50, 50];

/// An RGB canvas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `color`.
    pub fn new(width: u32, height: u32, color: [u8; 3]) -> Self {
        let pixels = color
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect();
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// The color at (x, y), `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&color);
    }

    /// A 2-pixel-wide line from (x0, y0) to (x1, y1) (Bresenham), every pixel when `dash` is
    /// 0, else `dash` on and `dash` off.
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: [u8; 3], dash: u32) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let mut step = 0u32;
        loop {
            if dash == 0 || (step / dash).is_multiple_of(2) {
                for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    self.set(x + ox, y + oy, color);
                }
            }
            step += 1;
            if x == x1 && y == y1 {
                return;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Encodes the canvas as PNG.
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        // Bit depth 8, color type 2 (RGB), deflate, adaptive filtering, no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        let row = self.width as usize * 3;
        let mut raw = Vec::with_capacity((row + 1) * self.height as usize);
        for line in self.pixels.chunks(row.max(1)) {
            raw.push(0); // filter type None
            raw.extend_from_slice(line);
        }
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        // Writing into a Vec cannot fail.
        let data: Vec<u8> = z
            .write_all(&raw)
            .and_then(|()| z.finish())
            .unwrap_or_default();
        chunk(&mut out, b"IDAT", &data);
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Draws `series` (finite points, by time) on a [`WIDTH`] × [`HEIGHT`] canvas; `None` when it
/// has no finite point.
pub fn draw(series: &Series) -> Option<Canvas> {
    let mut pts: Vec<(f64, f64)> = series
        .points
        .iter()
        .filter(|p| p.value.is_finite())
        .map(|p| {
            let t = match p.time.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            (t, p.value)
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let threshold = series.threshold.filter(|t| t.is_finite());
    let (mut lo, mut hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if let Some(t) = threshold {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1.0) * 0.5
    };
    let (lo, hi) = (lo - pad, hi + pad);
    let (t0, t1) = (pts[0].0, pts[pts.len() - 1].0);

    let (w, h) = (i64::from(WIDTH), i64::from(HEIGHT));
    let (left, right, top, bottom) = (MARGIN, w - 1 - MARGIN, MARGIN, h - 1 - MARGIN);
    let x_of = |t: f64| -> i64 {
        if t1 > t0 {
            left + ((t - t0) / (t1 - t0) * (right - left) as f64).round() as i64
        } else {
            (left + right) / 2
        }
    };
    let y_of =
        |v: f64| -> i64 { bottom - ((v - lo) / (hi - lo) * (bottom - top) as f64).round() as i64 };

    let mut c = Canvas::new(WIDTH, HEIGHT, BACKGROUND);
    for y in [top, (top + bottom) / 2, bottom] {
        c.line(
            (left, y),
            (right, y),
            FRAME,
            if y == bottom { 0 } else { 2 },
        );
    }
    c.line((left, top), (left, bottom), FRAME, 0);
    if let Some(t) = threshold {
        let y = y_of(t);
        c.line((left, y), (right, y), THRESHOLD, 6);
    }
    let xy: Vec<(i64, i64)> = pts.iter().map(|&(t, v)| (x_of(t), y_of(v))).collect();
    if xy.len() == 1 {
        let (x, y) = xy[0];
        c.line((x - 2, y), (x + 2, y), LINE, 0);
        c.line((x, y - 2), (x, y + 2), LINE, 0);
    }
    for pair in xy.windows(2) {
        c.line(pair[0], pair[1], LINE, 0);
    }
    Some(c)
}

/// The PNG of `series`, `None` when it has no finite point.
pub fn png(series: &Series) -> Option<Vec<u8>> {
    draw(series).map(|c| c.to_png())
}

#[cfg(test)]
mod tests {
    use super::super::alert::Point;
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;
    use std::time::Duration;

    /// Reads back what `to_png` wrote: checks signature, chunk CRCs and returns
    /// (width, height, pixels).
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut i = 8;
        let (mut w, mut h, mut idat) = (0, 0, Vec::new());
        let mut kinds = Vec::new();
        while i < png.len() {
            let len = u32::from_be_bytes(png[i..i + 4].try_into().expect("4")) as usize;
            let kind = &png[i + 4..i + 8];
            let data = &png[i + 8..i + 8 + len];
            let crc = u32::from_be_bytes(png[i + 8 + len..i + 12 + len].try_into().expect("4"));
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(kind);
            hasher.update(data);
            assert_eq!(
                hasher.finalize(),
                crc,
                "CRC of {}",
                String::from_utf8_lossy(kind)
            );
            kinds.push(String::from_utf8_lossy(kind).to_string());
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().expect("4"));
                    h = u32::from_be_bytes(data[4..8].try_into().expect("4"));
                    assert_eq!(&data[8..], &[8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            i += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        let mut raw = Vec::new();
        ZlibDecoder::new(&idat[..])
            .read_to_end(&mut raw)
            .expect("zlib");
        let row = w as usize * 3 + 1;
        assert_eq!(raw.len(), row * h as usize);
        let mut pixels = Vec::new();
        for line in raw.chunks(row) {
            assert_eq!(line[0], 0, "filter byte");
            pixels.extend_from_slice(&line[1..]);
        }
        (w, h, pixels)
    }

    #[test]
    fn png_round_trips() {
        let mut c = Canvas::new(3, 2, BACKGROUND);
        c.set(1, 1, LINE);
        let (w, h, pixels) = decode(&c.to_png());
        assert_eq!((w, h), (3, 2));
        assert_eq!(pixels, c.pixels);
        assert_eq!(&pixels[12..15], &LINE);
    }

    #[test]
    fn chart_draws_the_series_and_the_threshold() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let series = Series {
            name: "psi".into(),
            // A rising line from 0 to 1 over 10 minutes, a NaN that is left out.
            points: (0..=10)
                .map(|i| Point {
                    time: t + Duration::from_secs(60 * i),
                    value: if i == 5 { f64::NAN } else { i as f64 / 10.0 },
                })
                .collect(),
            threshold: Some(0.5),
        };
        let c = draw(&series).expect("drawn");
        let (w, h, pixels) = decode(&c.to_png());
        assert_eq!((w, h), (WIDTH, HEIGHT));
        assert_eq!(pixels, c.pixels);
        let (left, right) = (MARGIN as u32, WIDTH - 1 - MARGIN as u32);
        let (top, bottom) = (MARGIN as u32, HEIGHT - 1 - MARGIN as u32);
        // The first value is the lowest, the last the highest: bottom left to top right.
        let pad = ((bottom - top) as f64 * 0.08 / 1.16).round() as u32;
        assert_eq!(c.pixel(left, bottom - pad), Some(LINE));
        assert_eq!(c.pixel(right, top + pad), Some(LINE));
        // The threshold is dashed across the middle.
        let mid = (top + bottom) / 2;
        let red = (left..=right)
            .filter(|&x| (mid - 1..=mid + 2).any(|y| c.pixel(x, y) == Some(THRESHOLD)))
            .count();
        assert!(red > 150 && red < 300, "{red} dashed pixels");
        // Corners stay background.
        assert_eq!(c.pixel(0, 0), Some(BACKGROUND));
        assert_eq!(c.pixel(WIDTH - 1, HEIGHT - 1), Some(BACKGROUND));
    }

    #[test]
    fn one_point_is_a_mark_and_no_point_is_no_chart() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000);
        let one = Series {
            name: "x".into(),
            points: vec![Point {
                time: t,
                value: 3.0,
            }],
            threshold: None,
        };
        let c = draw(&one).expect("drawn");
        let centre = ((WIDTH - 1) / 2, (HEIGHT - 1) / 2);
        assert_eq!(c.pixel(centre.0, centre.1), Some(LINE));
        let none = Series {
            name: "x".into(),
            points: vec![Point {
                time: t,
                value: f64::INFINITY,
            }],
            threshold: Some(1.0),
        };
        assert!(png(&none).is_none());
    }
}
