//! An error list for teardowns: every step of a teardown is tried, and every failure is kept
//! and reported together, so the first failure never hides the others and none is dropped
//! (docs/STYLE: netavark's error list). The steps are the caller's; this only gathers.

/// One failed step: what it was doing, and why it failed.
#[derive(Debug)]
pub struct StepError {
    pub step: String,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

/// The failures of a teardown, in the order they happened.
#[derive(Debug, Default)]
pub struct Errors(Vec<StepError>);

impl Errors {
    /// Keeps the error of `result`, if any, under `step`; the value otherwise.
    pub fn check<T, E>(&mut self, step: impl Into<String>, result: Result<T, E>) -> Option<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(StepError {
                    step: step.into(),
                    error: e.into(),
                });
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn failures(&self) -> &[StepError] {
        &self.0
    }

    /// `Ok` when every step succeeded, else the whole list.
    pub fn into_result(self) -> Result<(), Errors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// One line per failure: `step: error`.
impl std::fmt::Display for Errors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", s.step, s.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_kept_in_order() {
        let mut errors = Errors::default();
        assert_eq!(errors.check("first", Ok::<_, std::io::Error>(1)), Some(1));
        assert!(errors.is_empty());
        errors.check(
            "cannot remove /a",
            Err::<(), _>(std::io::Error::other("busy")),
        );
        errors.check("cannot reload", Err::<(), _>("no bus"));
        assert_eq!(errors.failures().len(), 2);
        assert_eq!(
            errors.into_result().unwrap_err().to_string(),
            "cannot remove /a: busy\ncannot reload: no bus"
        );
        assert!(Errors::default().into_result().is_ok());
    }
}
