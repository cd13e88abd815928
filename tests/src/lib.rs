//! Black-box tests of real `lockmgr` processes. Empty until the replicated-server issue.
