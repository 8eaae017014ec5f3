//! Entry paths from an untrusted package: normalising them, printing them, and
//! the index of what has been created, which decides whether a new entry or a
//! symbolic link is safe.
//!
//! Paths are handled as bytes and `/`-separated components, never through the
//! file system: the decision whether an entry may be created is made against
//! [`TreeIndex`], the record of everything this unpack created itself, so no
//! attacker-made link is ever consulted or followed.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{LinkProblem, PathProblem};

/// Most characters of an entry name shown in an error.
const SHOW_MAX_CHARS: usize = 200;

/// Linux's own limit on links followed while resolving one path.
const MAX_LINK_HOPS: u32 = 40;

/// An untrusted name made safe to print: invalid UTF-8 replaced, control
/// characters (terminal escapes) escaped, and long names shortened.
pub(crate) fn show(raw: &[u8]) -> String {
    // 1024 bytes are at least 256 characters, more than are ever shown, so a
    // huge name is never decoded whole.
    let text = String::from_utf8_lossy(&raw[..raw.len().min(1024)]);
    let escaped: String = text.escape_debug().take(SHOW_MAX_CHARS + 1).collect();
    if escaped.chars().count() > SHOW_MAX_CHARS {
        let cut: String = escaped.chars().take(SHOW_MAX_CHARS).collect();
        format!("{cut}… ({} bytes)", raw.len())
    } else {
        escaped
    }
}

/// [`show`] for a path.
pub(crate) fn show_path(path: &Path) -> String {
    show(path.as_os_str().as_bytes())
}

/// Normalises an entry path: drops empty and `.` components, refuses absolute
/// paths, `..` and NUL bytes. `Ok(None)` means the package root itself (`./`).
pub(crate) fn normalise(raw: &[u8]) -> Result<Option<PathBuf>, PathProblem> {
    if raw.contains(&0) {
        return Err(PathProblem::NulByte);
    }
    if raw.first() == Some(&b'/') {
        return Err(PathProblem::Absolute);
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(PathProblem::ParentComponent),
            name => out.push(OsStr::from_bytes(name)),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Checks a symbolic link's target on its own, before anything else is known:
/// relative, non-empty, and lexically inside the package when resolved from
/// the link's directory. [`TreeIndex::check_links`] later resolves it for real.
pub(crate) fn check_target_lexically(link: &Path, target: &[u8]) -> Result<(), LinkProblem> {
    if target.is_empty() {
        return Err(LinkProblem::Empty);
    }
    if target.contains(&0) {
        return Err(LinkProblem::NulByte);
    }
    if target.first() == Some(&b'/') {
        return Err(LinkProblem::Absolute);
    }
    let mut depth = link.parent().map_or(0, |p| p.components().count());
    for comp in target.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => depth = depth.checked_sub(1).ok_or(LinkProblem::Escapes)?,
            _ => depth += 1,
        }
    }
    Ok(())
}

/// What an entry in the index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
}

/// Why an entry cannot be created where it asks to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clash {
    /// A parent is a link.
    ThroughSymlink(PathBuf),
    /// A parent is a file.
    ParentIsFile(PathBuf),
    /// The path exists already and the new entry is not a directory over a directory.
    Duplicate,
}

/// How to create an admitted entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Parent directories that do not exist yet, shallowest first.
    pub missing_parents: Vec<PathBuf>,
    /// The entry is a directory that already exists: nothing to do.
    pub already_there: bool,
}

/// Everything created so far under the destination, by relative path.
#[derive(Debug, Default)]
pub(crate) struct TreeIndex {
    kinds: HashMap<PathBuf, Kind>,
    links: HashMap<PathBuf, PathBuf>,
}

impl TreeIndex {
    /// Decides whether `path` may be created as `kind`.
    pub(crate) fn plan(&self, path: &Path, kind: Kind) -> Result<Plan, Clash> {
        let mut plan = Plan::default();
        let mut parents: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        parents.reverse();
        for parent in parents {
            match self.kinds.get(parent) {
                None => plan.missing_parents.push(parent.to_path_buf()),
                Some(Kind::Dir) => {}
                Some(Kind::Symlink) => return Err(Clash::ThroughSymlink(parent.to_path_buf())),
                Some(Kind::File) => return Err(Clash::ParentIsFile(parent.to_path_buf())),
            }
        }
        match (self.kinds.get(path), kind) {
            (None, _) => Ok(plan),
            // Directory entries often repeat or follow their implicit creation
            // (`a/b` before `a/`); that replaces nothing.
            (Some(Kind::Dir), Kind::Dir) => {
                plan.already_there = true;
                Ok(plan)
            }
            (Some(_), _) => Err(Clash::Duplicate),
        }
    }

    pub(crate) fn insert(&mut self, path: PathBuf, kind: Kind) {
        self.kinds.insert(path, kind);
    }

    /// The one top-level entry, when there is exactly one and it is a real
    /// directory (not a link to one): the `tar -czf p.tar.gz p/` layout.
    pub(crate) fn single_top_dir(&self) -> Option<&Path> {
        let mut top = self
            .kinds
            .iter()
            .filter(|(path, _)| path.components().count() == 1);
        match (top.next(), top.next()) {
            (Some((path, Kind::Dir)), None) => Some(path),
            _ => None,
        }
    }

    pub(crate) fn insert_link(&mut self, path: PathBuf, target: PathBuf) {
        self.kinds.insert(path.clone(), Kind::Symlink);
        self.links.insert(path, target);
    }

    /// Resolves every link against the final tree, following links it meets on
    /// the way as the kernel would, and refuses any that leaves the package.
    ///
    /// The lexical check alone is not enough: with `d/l -> ..`, the link
    /// `x -> d/l/..` looks like `d` lexically but really resolves to the
    /// package's parent. Links may be created in any order, so this runs once
    /// the tree is complete. Returns the first bad link in path order.
    pub(crate) fn check_links(&self) -> Result<(), (PathBuf, PathBuf, LinkProblem)> {
        let mut links: Vec<_> = self.links.iter().collect();
        links.sort();
        for (link, target) in links {
            let mut stack: Vec<OsString> = link
                .parent()
                .map(|p| p.iter().map(OsStr::to_os_string).collect())
                .unwrap_or_default();
            let mut hops = 1;
            self.walk(&mut stack, target, &mut hops)
                .map_err(|problem| (link.clone(), target.clone(), problem))?;
        }
        Ok(())
    }

    fn walk(
        &self,
        stack: &mut Vec<OsString>,
        target: &Path,
        hops: &mut u32,
    ) -> Result<(), LinkProblem> {
        for comp in target.components() {
            match comp {
                Component::CurDir => {}
                Component::ParentDir => {
                    stack.pop().ok_or(LinkProblem::Escapes)?;
                }
                Component::RootDir | Component::Prefix(_) => return Err(LinkProblem::Absolute),
                Component::Normal(name) => {
                    stack.push(name.to_os_string());
                    let here: PathBuf = stack.iter().collect();
                    if let Some(next) = self.links.get(&here) {
                        *hops += 1;
                        if *hops > MAX_LINK_HOPS {
                            return Err(LinkProblem::TooManyHops);
                        }
                        stack.pop();
                        self.walk(stack, next, hops)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn normalise_cleans_and_refuses() {
        assert_eq!(normalise(b"a/./b//c/"), Ok(Some(p("a/b/c"))));
        assert_eq!(normalise(b"./"), Ok(None));
        assert_eq!(normalise(b""), Ok(None));
        assert_eq!(normalise(b"/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(normalise(b"a/../../b"), Err(PathProblem::ParentComponent));
        assert_eq!(normalise(b"a/.."), Err(PathProblem::ParentComponent));
        assert_eq!(normalise(b"a\0b"), Err(PathProblem::NulByte));
        // A backslash is an ordinary byte in a Linux name, not a separator.
        assert_eq!(normalise(b"..\\x"), Ok(Some(p("..\\x"))));
    }

    #[test]
    fn show_escapes_and_shortens() {
        assert_eq!(show(b"a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(show(b"ok/name"), "ok/name");
        let long = show(&[b'a'; 5000]);
        assert!(long.ends_with("… (5000 bytes)"), "{long}");
        assert!(long.len() < 300);
    }

    #[test]
    fn lexical_target_check() {
        assert_eq!(check_target_lexically(&p("a"), b"b"), Ok(()));
        assert_eq!(check_target_lexically(&p("d/a"), b"../b"), Ok(()));
        assert_eq!(check_target_lexically(&p("a"), b"."), Ok(()));
        assert_eq!(
            check_target_lexically(&p("a"), b"../.."),
            Err(LinkProblem::Escapes)
        );
        assert_eq!(
            check_target_lexically(&p("d/a"), b"../../x"),
            Err(LinkProblem::Escapes)
        );
        assert_eq!(
            check_target_lexically(&p("a"), b"x/../../y"),
            Err(LinkProblem::Escapes)
        );
        assert_eq!(
            check_target_lexically(&p("etc"), b"/etc"),
            Err(LinkProblem::Absolute)
        );
        assert_eq!(
            check_target_lexically(&p("a"), b""),
            Err(LinkProblem::Empty)
        );
    }

    #[test]
    fn plan_refuses_through_links_files_and_duplicates() {
        let mut t = TreeIndex::default();
        t.insert(p("d"), Kind::Dir);
        t.insert(p("d/f"), Kind::File);
        t.insert_link(p("l"), p("."));
        assert_eq!(
            t.plan(&p("l/x"), Kind::File),
            Err(Clash::ThroughSymlink(p("l")))
        );
        assert_eq!(
            t.plan(&p("d/f/x"), Kind::File),
            Err(Clash::ParentIsFile(p("d/f")))
        );
        assert_eq!(t.plan(&p("d/f"), Kind::File), Err(Clash::Duplicate));
        assert_eq!(t.plan(&p("d"), Kind::File), Err(Clash::Duplicate));
        assert_eq!(t.plan(&p("l"), Kind::Dir), Err(Clash::Duplicate));
        assert_eq!(
            t.plan(&p("d"), Kind::Dir),
            Ok(Plan {
                missing_parents: vec![],
                already_there: true
            })
        );
        assert_eq!(
            t.plan(&p("d/n/m/x"), Kind::File),
            Ok(Plan {
                missing_parents: vec![p("d/n"), p("d/n/m")],
                already_there: false
            })
        );
    }

    #[test]
    fn links_are_resolved_through_other_links() {
        let mut t = TreeIndex::default();
        t.insert(p("d"), Kind::Dir);
        t.insert_link(p("d/l"), p(".."));
        assert!(t.check_links().is_ok());
        // Lexically `d`, really the package's parent.
        t.insert_link(p("x"), p("d/l/.."));
        let (link, _, problem) = t.check_links().unwrap_err();
        assert_eq!((link, problem), (p("x"), LinkProblem::Escapes));
    }

    #[test]
    fn link_chains_inside_are_fine_and_loops_are_refused() {
        let mut t = TreeIndex::default();
        t.insert(p("d"), Kind::Dir);
        t.insert(p("d/f"), Kind::File);
        t.insert_link(p("a"), p("b"));
        t.insert_link(p("b"), p("d/f"));
        t.insert_link(p("d/up"), p("../a"));
        t.insert_link(p("dangling"), p("nowhere/at/all"));
        assert!(t.check_links().is_ok());
        t.insert_link(p("loop1"), p("loop2"));
        t.insert_link(p("loop2"), p("loop1"));
        let (_, _, problem) = t.check_links().unwrap_err();
        assert_eq!(problem, LinkProblem::TooManyHops);
    }
}
