// hvctl's bash completion and man page, generated from the CLI11 definition itself (so they
// cannot drift from the commands): hidden `hvctl completion bash` and `hvctl completion man`.
// The build runs them (src/cli/CMakeLists.txt) and installs the results.
#include "completion.hpp"

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "context.hpp"
#include "hv/error.hpp"

namespace hv::cli {
namespace {

// Hidden subcommands and options have an empty group (CLI11's convention).
std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
    return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

std::vector<const CLI::Option*> named_options(const CLI::App& app) {
    return app.get_options([](const CLI::Option* o) { return o->nonpositional() && !o->get_group().empty(); });
}

std::vector<const CLI::Option*> positionals(const CLI::App& app) {
    return app.get_options([](const CLI::Option* o) { return !o->nonpositional(); });
}

// Flags are options that expect no value (CLI11: expected(0)).
bool takes_value(const CLI::Option& o) { return o.get_expected_max() != 0 && o.get_type_size_max() != 0; }

std::vector<std::string> spellings(const CLI::Option& o) {
    std::vector<std::string> out;
    for (const auto& s : o.get_snames()) out.push_back("-" + s);
    for (const auto& l : o.get_lnames()) out.push_back("--" + l);
    return out;
}

// "TEXT:{table,json}" -> {"table", "json"}: the values of a CLI::IsMember check.
std::vector<std::string> choices(const CLI::Option& o) {
    std::vector<std::string> out;
    auto t = o.get_type_name();
    auto open = t.find(":{");
    if (open == std::string::npos) return out;
    auto close = t.find('}', open);
    if (close == std::string::npos) return out;
    std::stringstream ss(t.substr(open + 2, close - open - 2));
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string join(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, " ")); }

// Bash single-quoted string.
std::string bash_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

struct CommandNode {
    std::string path;  // "hvctl vm create"; "hvctl" for hvctl itself (bash keys cannot be empty)
    const CLI::App* app;
    std::vector<const CLI::App*> ancestors;  // root first
};

void walk(const CLI::App& app, const std::string& path, std::vector<const CLI::App*> ancestors,
          std::vector<CommandNode>& out) {
    out.push_back({path, &app, ancestors});
    ancestors.push_back(&app);
    for (const auto* sub : visible_subcommands(app))
        walk(*sub, path + " " + sub->get_name(), ancestors, out);
}

std::vector<CommandNode> all_commands(const CLI::App& root) {
    std::vector<CommandNode> out;
    walk(root, "hvctl", {}, out);
    return out;
}

// --- roff ------------------------------------------------------------------------------------

std::string roff(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
    return out;
}

// Running text: also lets groff break long value syntaxes ("size=4G[,bus=virtio|sata]...")
// after ',' '|' and ']' instead of overflowing the line.
std::string roff_text(const std::string& s) {
    std::string out;
    for (char c : roff(s)) {
        out += c;
        if (c == ',' || c == '|' || c == ']') out += "\\:";
    }
    return out;
}

std::string value_name(const CLI::Option& o) {
    auto t = o.get_type_name();
    auto colon = t.find(':');
    return colon == std::string::npos ? t : t.substr(0, colon);
}

// Validator text ("{table,json}", "INT in [0 - 1000]") and repetition, for the description.
std::string option_notes(const CLI::Option& o) {
    std::vector<std::string> notes;
    auto c = choices(o);
    if (!c.empty()) notes.push_back("one of: " + fmt::format("{}", fmt::join(c, ", ")));
    else {
        auto t = o.get_type_name();
        auto colon = t.find(':');
        if (colon != std::string::npos) notes.push_back(t.substr(colon + 1));
    }
    if (takes_value(o) && o.get_expected_max() > 1 && o.get_description().find("repeatable") == std::string::npos)
        notes.push_back("repeatable");
    if (o.get_required()) notes.push_back("required");
    if (notes.empty()) return "";
    return " (" + fmt::format("{}", fmt::join(notes, "; ")) + ")";
}

std::string positional_synopsis(const CLI::Option& p) {
    std::string name = p.get_name(true);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    std::string s = "\\fI" + roff(name) + "\\fR";
    if (p.get_expected_max() > 1) s += "...";
    return p.get_required() ? s : "[" + s + "]";
}

void man_option(std::ostringstream& m, const CLI::Option& o) {
    std::vector<std::string> names;
    for (const auto& n : spellings(o)) names.push_back("\\fB" + roff(n) + "\\fR");
    m << ".TP\n" << fmt::format("{}", fmt::join(names, ", "));
    if (takes_value(o)) m << " \\fI" << roff(value_name(o)) << "\\fR";
    m << "\n" << roff_text(o.get_description() + option_notes(o)) << "\n";
}

// hvctl's exit codes: the hv::Errc ones come from hv::exit_code(), the rest are hvctl's own.
struct ExitRow {
    int code;
    std::string meaning;
};
std::vector<ExitRow> exit_rows() {
    std::vector<ExitRow> rows{{0, "success"},
                              {kExitUsage, "usage error (bad flag or argument)"},
                              {kExitUnreachable, "hvd unreachable (socket missing, refused, no permission)"},
                              {kExitTaskFailed, "a task failed without an error code"}};
    const std::pair<Errc, const char*> errs[] = {
        {Errc::internal, "internal error"},
        {Errc::invalid_input, "invalid input (nothing was changed)"},
        {Errc::not_found, "not found"},
        {Errc::conflict, "conflict: exists already, wrong state, busy"},
        {Errc::unavailable, "libvirt unreachable (hvd reconnects)"},
        {Errc::timeout, "timeout (e.g. a shutdown without --force)"},
        {Errc::unsupported, "unsupported by this host"},
        {Errc::cancelled, "task cancelled"},
        {Errc::insufficient_space, "not enough free space in the pool"},
    };
    for (const auto& [e, meaning] : errs)
        rows.push_back({exit_code(e), fmt::format("{} ({}, HTTP {})", meaning, errc_name(e), http_status(e))});
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.code < b.code; });
    return rows;
}

}  // namespace

std::string bash_completion_script(const CLI::App& root) {
    auto nodes = all_commands(root);
    std::ostringstream subs, flags, valopts, choice, vmname;
    for (const auto& n : nodes) {
        std::vector<std::string> sub_names, flag_names, value_names;
        for (const auto* s : visible_subcommands(*n.app)) sub_names.push_back(s->get_name());
        // hvctl sets fallthrough: the options of every parent command are accepted here too.
        auto scopes = n.ancestors;
        scopes.push_back(n.app);
        for (const auto* scope : scopes)
            for (const auto* o : named_options(*scope)) {
                auto names = spellings(*o);
                auto& into = takes_value(*o) ? value_names : flag_names;
                into.insert(into.end(), names.begin(), names.end());
                auto c = choices(*o);
                if (!c.empty())
                    for (const auto& name : names) choice << "  [" << bash_quote(n.path + "|" + name) << "]=" << bash_quote(join(c)) << "\n";
            }
        auto key = bash_quote(n.path);
        if (!sub_names.empty()) subs << "  [" << key << "]=" << bash_quote(join(sub_names)) << "\n";
        flags << "  [" << key << "]=" << bash_quote(join(flag_names)) << "\n";
        valopts << "  [" << key << "]=" << bash_quote(join(value_names)) << "\n";
        // `hvctl vm VERB NAME`: complete the first argument with the VMs hvd knows.
        auto pos = positionals(*n.app);
        if (n.path.rfind("hvctl vm ", 0) == 0 && !pos.empty() && pos.front()->get_name(true) == "name")
            vmname << "  [" << key << "]=1\n";
    }
    std::ostringstream s;
    s << "# bash completion for hvctl. Generated from hvctl's command definition by\n"
         "# `hvctl completion bash` (hv " HV_VERSION "); do not edit.\n"
         "# Arrays are global (-g): bash-completion sources this file inside a function.\n"
      << "declare -gA _hvctl_subs=(\n" << subs.str() << ")\n"
      << "declare -gA _hvctl_flags=(\n" << flags.str() << ")\n"
      << "declare -gA _hvctl_valopts=(\n" << valopts.str() << ")\n"
      << "declare -gA _hvctl_choices=(\n" << choice.str() << ")\n"
      << "declare -gA _hvctl_vmname=(\n" << vmname.str() << ")\n"
      << R"BASH(
_hvctl() {
    local cur prev words cword
    if declare -F _get_comp_words_by_ref >/dev/null; then
        _get_comp_words_by_ref -n =: cur prev words cword
    else
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
        cur=${words[cword]} prev=${words[cword-1]}
    fi
    COMPREPLY=()
    # Which command is being typed: follow subcommand names, skip option values.
    local path=hvctl i w skip=0 npos=0
    local -a sock=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if ((skip)); then
            skip=0
            [[ ${words[i-1]} == --socket ]] && sock=(--socket "$w")
            continue
        fi
        case $w in
            --*=*) [[ $w == --socket=* ]] && sock=("$w") ;;
            -*) [[ " ${_hvctl_valopts[$path]} " == *" $w "* ]] && skip=1 ;;
            *)
                if [[ " ${_hvctl_subs[$path]-} " == *" $w "* ]]; then
                    path="$path $w"
                    npos=0
                else
                    ((npos++))
                fi
                ;;
        esac
    done
    local opt=$prev val=$cur
    if [[ $cur == --*=* ]]; then
        opt=${cur%%=*} val=${cur#*=}
    elif ((!skip)); then
        opt=""
    fi
    if [[ -n $opt ]]; then
        # The value of an option: its choices, else file names (e.g. --socket).
        local c=${_hvctl_choices[$path|$opt]-}
        if [[ -n $c ]]; then
            COMPREPLY=($(compgen -W "$c" -- "$val"))
            [[ $cur == --*=* ]] && COMPREPLY=("${COMPREPLY[@]/#/$opt=}")
        else
            compopt -o default 2>/dev/null
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_hvctl_flags[$path]} ${_hvctl_valopts[$path]}" -- "$cur"))
        return 0
    fi
    if [[ -n ${_hvctl_subs[$path]-} ]]; then
        COMPREPLY=($(compgen -W "${_hvctl_subs[$path]}" -- "$cur"))
        return 0
    fi
    if [[ -n ${_hvctl_vmname[$path]-} ]] && ((npos == 0)); then
        COMPREPLY=($(compgen -W "$("${words[0]}" "${sock[@]}" --no-headers vm list 2>/dev/null | awk '{print $1}')" -- "$cur"))
        return 0
    fi
    compopt -o default 2>/dev/null
    return 0
}
complete -F _hvctl hvctl
)BASH";
    return s.str();
}

std::string man_page(const CLI::App& root) {
    std::ostringstream m;
    m << ".\\\" Generated by `hvctl completion man` from hvctl's command definition; do not edit.\n"
      << ".TH HVCTL 1 \"\" \"hv " HV_VERSION "\" \"User Commands\"\n"
      << ".\\\" Left-aligned: the long value syntaxes (--disk) cannot be justified.\n.ad l\n"
      << ".SH NAME\nhvctl \\- control hvd, the hv KVM virtualization host daemon\n"
      << ".SH SYNOPSIS\n.B hvctl\n[\\fIGLOBAL OPTIONS\\fR] \\fINOUN\\fR [\\fIVERB\\fR] [\\fIOPTIONS\\fR] "
         "[\\fIARGUMENTS\\fR]\n"
      << ".SH DESCRIPTION\n"
      << "hvctl talks to \\fBhvd\\fR(8) over its REST API on a Unix socket. Commands are "
         "\\fInoun verb\\fR pairs (\\fBhvctl vm list\\fR). Commands that take longer than a moment run "
         "as tasks in hvd: hvctl waits for them and draws a progress bar on a terminal; \\fB\\-\\-async\\fR "
         "prints the task id and returns at once.\n"
      << ".PP\nThe global options below are accepted before or after the command. Every command also "
         "accepts \\fB\\-h\\fR, \\fB\\-\\-help\\fR.\n"
      << ".SH GLOBAL OPTIONS\n";
    for (const auto* o : named_options(root))
        if (o->get_lnames() != std::vector<std::string>{"help"}) man_option(m, *o);
    m << ".SH COMMANDS\n";
    for (const auto& n : all_commands(root)) {
        if (n.app == &root) continue;
        std::string synopsis = roff(n.path);
        bool has_subs = !visible_subcommands(*n.app).empty();
        if (has_subs) synopsis += " \\fIVERB\\fR";
        auto opts = named_options(*n.app);
        bool has_opts = std::any_of(opts.begin(), opts.end(),
                                    [](const CLI::Option* o) { return o->get_lnames() != std::vector<std::string>{"help"}; });
        if (has_opts) synopsis += " [\\fIOPTIONS\\fR]";
        for (const auto* p : positionals(*n.app)) synopsis += " " + positional_synopsis(*p);
        m << ".SS \"" << synopsis << "\"\n" << roff_text(n.app->get_description()) << "\n";
        for (const auto* p : positionals(*n.app)) {
            std::string name = p->get_name(true);
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
            m << ".TP\n\\fI" << roff(name) << "\\fR\n" << roff_text(p->get_description() + option_notes(*p)) << "\n";
        }
        for (const auto* o : opts)
            if (o->get_lnames() != std::vector<std::string>{"help"}) man_option(m, *o);
    }
    m << ".SH EXIT STATUS\n";
    for (const auto& r : exit_rows()) m << ".TP\n.B " << r.code << "\n" << roff(r.meaning) << "\n";
    m << ".SH ENVIRONMENT\n.TP\n.B HV_SOCKET\nhvd's socket when \\fB\\-\\-socket\\fR is not given "
         "(default \\fI/run/hv/hvd.sock\\fR).\n"
      << ".SH FILES\n.TP\n.I /run/hv/hvd.sock\nhvd's REST API socket: root and members of the group "
         "\\fBhv\\fR may use it (treat membership as root-equivalent).\n"
      << ".TP\n.I /usr/share/bash-completion/completions/hvctl\nbash completion, generated like this page.\n"
      << ".SH SEE ALSO\n\\fBhvd\\fR(8), \\fBvirsh\\fR(1), /usr/share/doc/hv/\n";
    return m.str();
}

void add_completion_commands(CLI::App& app, Context& ctx) {
    // Hidden (empty group): a packaging/build tool, not a noun users look for in --help.
    auto* cmd = app.add_subcommand("completion", "Print hvctl's bash completion script or man page")->group("");
    cmd->require_subcommand(1);
    cmd->add_subcommand("bash", "Print the bash completion script (source <(hvctl completion bash))")
        ->callback([&ctx, &app] {
            ctx.action = [&app] {
                std::cout << bash_completion_script(app);
                return 0;
            };
        });
    cmd->add_subcommand("man", "Print the hvctl(1) man page (roff)")->callback([&ctx, &app] {
        ctx.action = [&app] {
            std::cout << man_page(app);
            return 0;
        };
    });
}

}  // namespace hv::cli
