//! Nothing to use here: this crate holds the interop tests (`tests/`), the aiortc peer they
//! run (`aiortc_peer.py`, its pinned packages in `requirements.txt`, installed by
//! `setup-venv`), and builds the peer SDK's examples as binaries for them.
