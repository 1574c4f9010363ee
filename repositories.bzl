"""What a Bazel workspace needs to build hsmactor, in one call.

In WORKSPACE mode a dependency's repositories are not inherited, so a project
that depends on hsmactor declares them through this macro:

    local_repository(name = "hsmactor", path = "third_party/hsmactor")
    load("@hsmactor//:repositories.bzl", "hsmactor_dependencies")
    hsmactor_dependencies(hsmactor_path = "third_party/hsmactor")

Everything comes from the local machine (Debian packages; see
tools/install-deps.sh), because Debian's Bazel 4.2.3 runs offline. A
repository the workspace already declared is left as it is.
"""

def _declare(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def hsmactor_dependencies(hsmactor_path, hsmactor_name = "hsmactor"):
    """Declares @rules_cc, @rules_java, @remote_coverage_tools and the system libraries.

    Args:
      hsmactor_path: where hsmactor's checkout is, relative to the workspace root
        (or absolute); "." for hsmactor itself.
      hsmactor_name: the name hsmactor's own repository was declared under.
    """
    third_party = hsmactor_path + "/third_party"
    build_files = "@%s//third_party:" % hsmactor_name

    # Bazel 4.2.3's @bazel_tools needs these; our rules_cc forwards to the
    # native rules (Debian's rules_cc 0.0.4 is too new for this Bazel).
    _declare(native.local_repository, "rules_cc", path = third_party + "/rules_cc")
    _declare(native.local_repository, "rules_java", path = "/usr/share/bazel/rules/java")
    _declare(native.local_repository, "remote_coverage_tools", path = third_party + "/remote_coverage_tools")

    # libcaf-dev 0.17.6
    _declare(native.new_local_repository, "caf", build_file = build_files + "caf.BUILD", path = "/usr/include")

    # libp11-kit-dev: pkcs11.h and the RFC 7512 URI parser
    _declare(native.new_local_repository, "p11kit", build_file = build_files + "p11kit.BUILD", path = "/usr/include/p11-kit-1")

    # catch2 2.13 and libssl-dev: hsmactor's own tests and tools
    _declare(native.new_local_repository, "catch2", build_file = build_files + "catch2.BUILD", path = "/usr/include")
    _declare(native.new_local_repository, "openssl", build_file = build_files + "openssl.BUILD", path = "/usr/include")

    # libasio-dev 1.22.1 (standalone Asio): only //asio and examples/sign_server use it
    _declare(native.new_local_repository, "asio", build_file = build_files + "asio.BUILD", path = "/usr/include")
