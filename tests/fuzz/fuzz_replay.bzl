"""fuzz_replay_test: a fuzz target's body run on its committed corpus."""

load("@rules_cc//cc:defs.bzl", "cc_test")
load("//:build_defs.bzl", "HSMACTOR_COPTS")

def fuzz_replay_test(name, deps):
    """Defines <name>_fuzz_replay_test: <name>_fuzz.cpp on corpus/<name>/.

    Args:
      name: the target, as in tools/fuzz.sh ("token_uri").
      deps: the libraries the fuzz target exercises.
    """
    cc_test(
        name = name + "_fuzz_replay_test",
        size = "small",
        srcs = [
            name + "_fuzz.cpp",
            "replay_main.cpp",
        ],
        args = ["tests/fuzz/corpus/" + name],
        copts = HSMACTOR_COPTS,
        data = native.glob(["corpus/" + name + "/*"]),
        deps = deps + [":fuzz_check"],
    )
