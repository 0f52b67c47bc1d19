//! Dependencies between plugins (`plugin.json`'s `dependencies: {"name": "^1.2"}`):
//! [`plan`] resolves a whole set of manifests before anything is loaded, and orders what can
//! load so that every plugin comes after the plugins it needs. A plugin whose dependency is
//! missing, matches no version, cannot load itself, or closes a cycle is refused with a
//! [`LoadError::Dependency`] naming the whole chain; the others load.
//!
//! Versions load side by side, so two plugins that need different versions of a third do
//! not conflict: each gets one that matches.

use std::path::PathBuf;

use semver::Version;

use crate::{
    error::{DependencyProblem, LoadError, MAX_DEPENDENCY_DEPTH},
    manifest::Manifest,
};

/// A manifest that parsed, waiting to be loaded.
pub(crate) struct Candidate {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// What to load, in order, and what to refuse.
pub(crate) struct Plan {
    /// Indices into the candidates, every plugin after the plugins it needs.
    pub order: Vec<usize>,
    /// Indices into the candidates, with why each cannot load.
    pub refused: Vec<(usize, LoadError)>,
}

#[derive(Clone)]
enum State {
    Unvisited,
    Visiting,
    Ok,
    Refused(Vec<String>, DependencyProblem),
}

/// Resolves `candidates` against each other and against the plugins already loaded
/// (`loaded`: name and version).
pub(crate) fn plan(candidates: &[Candidate], loaded: &[(String, Version)]) -> Plan {
    let mut resolver = Resolver {
        candidates,
        loaded,
        state: vec![State::Unvisited; candidates.len()],
        stack: Vec::new(),
        order: Vec::new(),
    };
    for i in 0..candidates.len() {
        let _ = resolver.visit(i); // a refusal is recorded in `state`
    }
    let refused = resolver
        .state
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            State::Refused(chain, problem) => Some((
                i,
                LoadError::Dependency {
                    chain: chain.clone(),
                    problem: problem.clone(),
                },
            )),
            _ => None,
        })
        .collect();
    Plan {
        order: resolver.order,
        refused,
    }
}

struct Resolver<'a> {
    candidates: &'a [Candidate],
    loaded: &'a [(String, Version)],
    state: Vec<State>,
    stack: Vec<usize>,
    order: Vec<usize>,
}

impl Resolver<'_> {
    fn id(&self, i: usize) -> String {
        self.candidates[i].manifest.id()
    }

    /// Resolves candidate `i`; `Err` is its chain and problem.
    fn visit(&mut self, i: usize) -> Result<(), (Vec<String>, DependencyProblem)> {
        match &self.state[i] {
            State::Ok => return Ok(()),
            State::Refused(chain, problem) => return Err((chain.clone(), problem.clone())),
            State::Visiting => {
                // A cycle: from where `i` is on the stack back round to `i`.
                let start = self.stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    self.stack[start..].iter().map(|&s| self.id(s)).collect();
                cycle.push(self.id(i));
                for &member in &self.stack[start..] {
                    self.state[member] = State::Refused(cycle.clone(), DependencyProblem::Cycle);
                }
                return Err((cycle, DependencyProblem::Cycle));
            }
            State::Unvisited => {}
        }
        if self.stack.len() >= MAX_DEPENDENCY_DEPTH {
            let mut chain: Vec<String> = self.stack.iter().map(|&s| self.id(s)).collect();
            chain.push(self.id(i));
            let problem = DependencyProblem::TooDeep {
                limit: MAX_DEPENDENCY_DEPTH,
            };
            self.state[i] = State::Refused(chain.clone(), problem.clone());
            return Err((chain, problem));
        }
        self.state[i] = State::Visiting;
        self.stack.push(i);
        let result = self.visit_dependencies(i);
        self.stack.pop();
        // A cycle through `i` may have refused it while its dependencies were visited.
        if let State::Refused(chain, problem) = &self.state[i] {
            return Err((chain.clone(), problem.clone()));
        }
        match result {
            Ok(()) => {
                self.state[i] = State::Ok;
                self.order.push(i);
                Ok(())
            }
            Err((chain, problem)) => {
                self.state[i] = State::Refused(chain.clone(), problem.clone());
                Err((chain, problem))
            }
        }
    }

    fn visit_dependencies(&mut self, i: usize) -> Result<(), (Vec<String>, DependencyProblem)> {
        let me = self.id(i);
        for (name, req) in &self.candidates[i].manifest.dependencies {
            if self.loaded.iter().any(|(n, v)| n == name && req.matches(v)) {
                continue;
            }
            let mut matching: Vec<usize> = (0..self.candidates.len())
                .filter(|&j| {
                    let m = &self.candidates[j].manifest;
                    m.name == *name && req.matches(&m.version)
                })
                .collect();
            // The highest matching version first; a lower one if the higher cannot load.
            matching.sort_by(|&a, &b| {
                let v = |j: usize| &self.candidates[j].manifest.version;
                v(b).cmp(v(a))
            });
            if matching.is_empty() {
                let versions: Vec<String> = self
                    .candidates
                    .iter()
                    .map(|c| &c.manifest)
                    .filter(|m| m.name == *name)
                    .map(|m| m.version.to_string())
                    .chain(
                        self.loaded
                            .iter()
                            .filter(|(n, _)| n == name)
                            .map(|(_, v)| v.to_string()),
                    )
                    .collect();
                let problem = DependencyProblem::unmet(name, req.to_string(), versions);
                return Err((vec![me], problem));
            }
            let mut last_failure = None;
            for j in matching {
                match self.visit(j) {
                    Ok(()) => {
                        last_failure = None;
                        break;
                    }
                    Err(failure) => last_failure = Some(failure),
                }
            }
            if let Some((chain, problem)) = last_failure {
                if matches!(problem, DependencyProblem::Cycle) {
                    return Err((chain, problem));
                }
                let mut full = vec![me];
                full.extend(chain);
                return Err((full, problem));
            }
        }
        Ok(())
    }
}
