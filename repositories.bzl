"""What a Bazel workspace needs to build hsmactor, in one call.

In WORKSPACE mode a dependency's repositories are not inherited, so a project
that depends on hsmactor declares them through this macro:

    local_repository(name = "hsmactor", path = "third_party/hsmactor")
    load("@hsmactor//:repositories.bzl", "hsmactor_dependencies")
    hsmactor_dependencies()

The macro finds hsmactor's checkout through its own repository label, so the
repository may be declared under any name, at any path, or replaced with
--override_repository. Everything comes from the local machine (Debian
packages; see tools/install-deps.sh), because Debian's Bazel 4.2.3 runs
offline. A repository the workspace already declared is left as it is.
"""

def _checkout_subdir_impl(repository_ctx):
    # A macro cannot turn a label into a filesystem path; a repository rule
    # can, and new_local_repository-style symlinks then mirror the directory.
    checkout = repository_ctx.path(repository_ctx.attr.checkout_marker).dirname
    source = repository_ctx.path("%s/%s" % (checkout, repository_ctx.attr.subdir))
    if not source.exists:
        fail("%s not found in hsmactor's checkout at %s" % (repository_ctx.attr.subdir, checkout))
    for entry in source.readdir():
        repository_ctx.symlink(entry, entry.basename)

# A directory of hsmactor's checkout (one with its own WORKSPACE file) as a
# repository of its own.
_checkout_subdir = repository_rule(
    implementation = _checkout_subdir_impl,
    attrs = {
        "checkout_marker": attr.label(
            mandatory = True,
            allow_single_file = True,
            doc = "A file at the root of hsmactor's checkout.",
        ),
        "subdir": attr.string(
            mandatory = True,
            doc = "The directory, relative to the checkout's root.",
        ),
    },
    local = True,
)

def _build_file(name):
    # Label() resolves in this file's repository, whatever it is called.
    return str(Label("//third_party:" + name))

def _declare(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def hsmactor_dependencies(hsmactor_path = None, hsmactor_name = None):
    """Declares @rules_cc, @rules_java, @remote_coverage_tools and the system libraries.

    Args:
      hsmactor_path: ignored; accepted so that older WORKSPACE files still load.
      hsmactor_name: ignored, likewise.
    """

    # Resolves in this file's repository, like _build_file.
    checkout_marker = Label("//:WORKSPACE")

    # Bazel 4.2.3's @bazel_tools needs these; our rules_cc forwards to the
    # native rules (Debian's rules_cc 0.0.4 is too new for this Bazel).
    _declare(_checkout_subdir, "rules_cc", checkout_marker = checkout_marker, subdir = "third_party/rules_cc")
    _declare(native.local_repository, "rules_java", path = "/usr/share/bazel/rules/java")
    _declare(_checkout_subdir, "remote_coverage_tools", checkout_marker = checkout_marker, subdir = "third_party/remote_coverage_tools")

    # libcaf-dev 0.17.6
    _declare(native.new_local_repository, "caf", build_file = _build_file("caf.BUILD"), path = "/usr/include")

    # libp11-kit-dev: pkcs11.h and the RFC 7512 URI parser
    _declare(native.new_local_repository, "p11kit", build_file = _build_file("p11kit.BUILD"), path = "/usr/include/p11-kit-1")

    # catch2 2.13 and libssl-dev: hsmactor's own tests and tools
    _declare(native.new_local_repository, "catch2", build_file = _build_file("catch2.BUILD"), path = "/usr/include")
    _declare(native.new_local_repository, "openssl", build_file = _build_file("openssl.BUILD"), path = "/usr/include")

    # nlohmann-json3-dev and libcli11-dev: the tools' JSON lines and command lines
    _declare(native.new_local_repository, "nlohmann_json", build_file = _build_file("nlohmann_json.BUILD"), path = "/usr/include")
    _declare(native.new_local_repository, "cli11", build_file = _build_file("cli11.BUILD"), path = "/usr/include")

    # libasio-dev 1.22.1 (standalone Asio): only //asio and examples/sign_server use it
    _declare(native.new_local_repository, "asio", build_file = _build_file("asio.BUILD"), path = "/usr/include")
