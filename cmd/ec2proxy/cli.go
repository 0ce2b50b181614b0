package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the proxy with a configuration file", serve},
		{"demo", "run a self-contained demo: proxy, demo EC2 backend and fresh keys", demo},
		{"check-config", "validate a configuration file and the files it names", checkConfig},
		{"creds", "manage EC2 credentials; import them from Keystone (creds -h)", creds},
		{"ec2rc", "write an ec2rc.sh for a credential", ec2rc},
		{"sign", "sign and send an EC2 request (SigV2 or SigV4), for debugging", sign},
		{"policy", "check what the authorization policy allows (policy -h)", policyCmd},
		{"health", "ask a running proxy whether it is alive or ready (container health checks)", health},
		{"version", "print the version", func(_ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "ec2proxy", buildVersion())
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ec2proxy <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'ec2proxy <command> -h' for a command's flags.")
}

// exitUsage marks errors in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// subcommandError is a failure of a command group's subcommand (creds
// disable): its message names the subcommand, not the group alone.
type subcommandError struct {
	name string
	err  error
}

func (e subcommandError) Error() string { return e.name + ": " + e.err.Error() }
func (e subcommandError) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 { // a usage error: the help goes with the other errors
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			name := c.name
			var sub subcommandError
			if errors.As(err, &sub) {
				name, err = name+" "+sub.name, sub.err
			}
			fmt.Fprintln(stderr, "ec2proxy "+name+":", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "ec2proxy: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

type flagSet = flag.FlagSet

var errHelp = flag.ErrHelp

// newFlags returns a flag set whose parse errors are usage errors.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ec2proxy %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
