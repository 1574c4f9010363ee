"""Exposes the headers of a cc_library as plain files, for genrules to read."""

def _cc_headers_impl(ctx):
    return [DefaultInfo(files = ctx.attr.library[CcInfo].compilation_context.headers)]

cc_headers = rule(
    implementation = _cc_headers_impl,
    doc = "The header files a cc_library (and its deps) offers its users.",
    attrs = {
        "library": attr.label(providers = [CcInfo]),
    },
)
