//! Port back ends and OS plumbing for rvswitch. All `unsafe` in the project lives here.
