package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"time"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/transport/ssh"
)

// cmdSSHProbe times drover's SSH transport against one host, both ways it
// can run: commands through one shell session or one SSH session each, and
// uploads through the shell session or SFTP. Run it in the lab's control
// namespace (ip netns exec), against a host with and without --slow-rc.
//
//	drover-lab ssh-probe --host ADDR --identity F --known-hosts F [--user U]
//	    [--file F --dest DIR] [--rounds N]
func cmdSSHProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssh-probe", flag.ContinueOnError)
	target := addSSHFlags(fs, "host", "user")
	file := fs.String("file", "", "a file to upload (timed)")
	dest := fs.String("dest", "/tmp", "remote directory for the uploads")
	rounds := fs.Int("rounds", 10, "timed rounds of each")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *target.host == "" || *target.identity == "" || *target.knownHosts == "" || *rounds < 1 {
		return fmt.Errorf("%w: --host, --identity and --known-hosts are required", errUsage)
	}
	type mode struct {
		Name      string          `json:"name"`
		FirstCall float64         `json:"first_call_ms"` // connect + first command
		FirstPut  float64         `json:"first_put_ms,omitempty"`
		Run       *lab.RoundTrips `json:"run"`
		Put       *lab.RoundTrips `json:"put,omitempty"`
		Stats     ssh.Stats       `json:"stats"`
	}
	var rep []mode
	for _, perCommand := range []bool{false, true} {
		m := mode{Name: "shell session (upload in session)"}
		if perCommand {
			m.Name = "session per command (upload by SFTP)"
		}
		start := time.Now()
		d, cl, err := target.dial(ctx, perCommand)
		if err != nil {
			return err
		}
		if err := cl.Run(ctx, "true", io.Discard); err != nil {
			return err
		}
		m.FirstCall = ms(time.Since(start))
		m.Run, err = timeRounds(*rounds, func() error { return cl.Run(ctx, "true", io.Discard) })
		if err != nil {
			return fmt.Errorf("%s: run: %w", m.Name, err)
		}
		if *file != "" {
			dst := path.Join(*dest, "drover-probe-upload")
			put := func() error {
				f, err := os.Open(*file)
				if err != nil {
					return err
				}
				defer f.Close()
				return cl.Put(ctx, dst, f, 0o600)
			}
			start := time.Now()
			if err := put(); err != nil {
				return fmt.Errorf("%s: put: %w", m.Name, err)
			}
			m.FirstPut = ms(time.Since(start))
			m.Put, err = timeRounds(*rounds, put)
			if err != nil {
				return fmt.Errorf("%s: put: %w", m.Name, err)
			}
			_ = cl.Run(ctx, "rm -f "+dst, io.Discard)
		}
		m.Stats = d.Stats()
		_ = cl.Close()
		rep = append(rep, m)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// sshFlags are the flags that say how to reach a host over SSH.
type sshFlags struct {
	host, user, identity, knownHosts *string
}

// addSSHFlags defines them on fs, the host's and the user's under the
// names given.
func addSSHFlags(fs *flag.FlagSet, hostName, userName string) sshFlags {
	return sshFlags{
		host:       fs.String(hostName, "", "host:port to reach over SSH"),
		user:       fs.String(userName, "root", "SSH user"),
		identity:   fs.String("identity", "", "SSH private key"),
		knownHosts: fs.String("known-hosts", "", "known_hosts"),
	}
}

// dial connects to the host with drover's own SSH transport.
func (f sshFlags) dial(ctx context.Context, perCommand bool) (*ssh.Dialer, *ssh.Client, error) {
	d, err := ssh.NewDialer(ssh.Config{User: *f.user, IdentityFile: *f.identity, KnownHosts: *f.knownHosts, PerCommandSessions: perCommand})
	if err != nil {
		return nil, nil, err
	}
	cl, err := d.Dial(ctx, *f.host)
	if err != nil {
		return nil, nil, err
	}
	return d, cl, nil
}

// timeRounds times n calls of f.
func timeRounds(n int, f func() error) (*lab.RoundTrips, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return &lab.RoundTrips{N: n, MedianMS: ms(ds[n/2]), P90MS: ms(ds[n*9/10])}, nil
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
