//! Ground-truth factor grids: names, sizes, values, and the index <-> factor-class convention
//! (C order: the last factor varies fastest, `index = sum_f class_f * base_f`, `base_f = prod_{g>f} size_g`).
use crate::display::Table;
use crate::error::{Error, Result};

/// One generative factor: its name and the value of each class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Factor {
    pub name: String,
    pub values: Vec<f64>,
}

impl Factor {
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Self {
        Factor { name: name.into(), values }
    }
    /// `n` values spaced evenly over `[lo, hi]`, both ends included (numpy's `linspace`).
    pub fn linspace(name: impl Into<String>, lo: f64, hi: f64, n: usize) -> Self {
        let values = (0..n).map(|i| if n == 1 { lo } else { lo + (hi - lo) * i as f64 / (n - 1) as f64 }).collect();
        Factor::new(name, values)
    }
    /// Classes `0..n` as their own values (categorical factors).
    pub fn categorical(name: impl Into<String>, n: usize) -> Self {
        Factor::new(name, (0..n).map(|i| i as f64).collect())
    }
    pub fn size(&self) -> usize {
        self.values.len()
    }
    /// Keep every `step`-th class starting at 0 (for quick, sub-sampled grids).
    pub fn every(&self, step: usize) -> Factor {
        Factor::new(self.name.clone(), self.values.iter().step_by(step.max(1)).copied().collect())
    }
}

/// The full grid of factor combinations of a dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FactorSpace {
    factors: Vec<Factor>,
    bases: Vec<usize>,
    len: usize,
}

impl FactorSpace {
    /// Checks that there is at least one factor, every factor has at least one class and a unique name, and the
    /// number of combinations fits in `usize`.
    pub fn new(factors: Vec<Factor>) -> Result<Self> {
        if factors.is_empty() {
            return Err(Error::config("factors", "a dataset needs at least one factor"));
        }
        let mut bases = vec![0; factors.len()];
        let mut len: usize = 1;
        for (i, f) in factors.iter().enumerate().rev() {
            if f.size() == 0 {
                return Err(Error::config("factors", format!("factor '{}' has no values", f.name)));
            }
            if factors[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::config("factors", format!("factor name '{}' appears twice", f.name)));
            }
            bases[i] = len;
            len = len
                .checked_mul(f.size())
                .ok_or_else(|| Error::config("factors", "the number of factor combinations overflows"))?;
        }
        Ok(FactorSpace { factors, bases, len })
    }

    /// Number of factor combinations (= images in a complete grid).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn num_factors(&self) -> usize {
        self.factors.len()
    }
    pub fn factors(&self) -> &[Factor] {
        &self.factors
    }
    pub fn factor(&self, f: usize) -> &Factor {
        &self.factors[f]
    }
    pub fn sizes(&self) -> Vec<usize> {
        self.factors.iter().map(Factor::size).collect()
    }
    pub fn names(&self) -> Vec<&str> {
        self.factors.iter().map(|f| f.name.as_str()).collect()
    }
    pub fn bases(&self) -> &[usize] {
        &self.bases
    }
    /// Position of the factor called `name`.
    pub fn find(&self, name: &str) -> Result<usize> {
        self.factors.iter().position(|f| f.name == name).ok_or_else(|| {
            Error::config("factor", format!("no factor '{name}' (factors: {})", self.names().join(", ")))
        })
    }

    /// Flat index of a combination of classes.
    pub fn index_of(&self, classes: &[usize]) -> Result<usize> {
        if classes.len() != self.factors.len() {
            return Err(Error::config(
                "classes",
                format!("{} classes given for {} factors", classes.len(), self.factors.len()),
            ));
        }
        let mut index = 0;
        for ((f, &c), &b) in self.factors.iter().zip(classes).zip(&self.bases) {
            if c >= f.size() {
                return Err(Error::config(
                    "classes",
                    format!("class {c} of factor '{}' is out of range 0..{}", f.name, f.size()),
                ));
            }
            index += c * b;
        }
        Ok(index)
    }

    /// Classes of a flat index, written into `out` (length = number of factors).
    pub fn classes_into(&self, index: usize, out: &mut [usize]) -> Result<()> {
        if index >= self.len {
            return Err(Error::config("index", format!("{index} is out of range 0..{}", self.len)));
        }
        let mut rest = index;
        for ((o, f), &b) in out.iter_mut().zip(&self.factors).zip(&self.bases) {
            *o = rest / b;
            rest %= b;
            debug_assert!(*o < f.size());
        }
        Ok(())
    }

    pub fn classes_of(&self, index: usize) -> Result<Vec<usize>> {
        let mut out = vec![0; self.factors.len()];
        self.classes_into(index, &mut out)?;
        Ok(out)
    }

    /// Factor values of a flat index.
    pub fn values_of(&self, index: usize) -> Result<Vec<f64>> {
        let c = self.classes_of(index)?;
        Ok(c.iter().zip(&self.factors).map(|(&c, f)| f.values[c]).collect())
    }

    /// The factor table (name, size, first and last values).
    pub fn table(&self) -> Table {
        let mut t = Table::new(["factor", "size", "values"]);
        for f in &self.factors {
            let vals: Vec<String> = f
                .values
                .iter()
                .map(|v| format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string())
                .collect();
            let shown = if vals.len() <= 8 {
                vals.join(", ")
            } else {
                format!("{}, {}, {}, …, {}", vals[0], vals[1], vals[2], vals[vals.len() - 1])
            };
            t.push_row([f.name.clone(), f.size().to_string(), shown]);
        }
        t.push_row(["(combinations)".to_string(), self.len.to_string(), String::new()]);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes3d() -> FactorSpace {
        crate::data::shapes3d::full_factors()
    }

    #[test]
    fn last_factor_varies_fastest_as_in_the_official_get_index() {
        let s = shapes3d();
        assert_eq!(s.len(), 480_000);
        assert_eq!(s.bases(), &[48000, 4800, 480, 60, 15, 1]);
        // 3dshapes notebook: idx = ((((fh*10 + wh)*10 + oh)*8 + sc)*4 + sh)*15 + or
        let c = [3, 7, 1, 5, 2, 11];
        let expect = ((((3 * 10 + 7) * 10 + 1) * 8 + 5) * 4 + 2) * 15 + 11;
        assert_eq!(s.index_of(&c).unwrap(), expect);
        assert_eq!(s.classes_of(expect).unwrap(), c);
        for i in [0, 1, 14, 15, 479_999, 123_457] {
            assert_eq!(s.index_of(&s.classes_of(i).unwrap()).unwrap(), i);
        }
        assert!((s.values_of(expect).unwrap()[3] - (0.75 + 5.0 * 0.5 / 7.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_grids_and_indices_are_errors() {
        assert!(FactorSpace::new(vec![]).is_err());
        assert!(FactorSpace::new(vec![Factor::new("a", vec![])])
            .unwrap_err()
            .to_string()
            .contains("'a' has no values"));
        assert!(FactorSpace::new(vec![Factor::categorical("a", 2), Factor::categorical("a", 3)]).is_err());
        let big = (0..8).map(|i| Factor::categorical(format!("f{i}"), 1 << 12)).collect();
        assert!(FactorSpace::new(big).unwrap_err().to_string().contains("overflows"));
        let s = shapes3d();
        assert!(s.index_of(&[0, 0, 0, 8, 0, 0]).unwrap_err().to_string().contains("class 8 of factor 'scale'"));
        assert!(s.index_of(&[0, 0]).is_err());
        assert!(s.classes_of(480_000).is_err());
        assert!(s.find("shape").is_ok() && s.find("colour").is_err());
    }

    #[test]
    fn linspace_and_every() {
        let f = Factor::linspace("x", 0.0, 1.0, 32).every(2);
        assert_eq!(f.size(), 16);
        assert!((f.values[1] - 2.0 / 31.0).abs() < 1e-15);
    }
}
