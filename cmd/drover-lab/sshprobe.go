package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/drover-dev/drover/orchestrator/ssh"
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
	host := fs.String("host", "", "host:port")
	user := fs.String("user", "root", "SSH user")
	identity := fs.String("identity", "", "SSH private key")
	knownHosts := fs.String("known-hosts", "", "known_hosts")
	file := fs.String("file", "", "a file to upload (timed)")
	dest := fs.String("dest", "/tmp", "remote directory for the uploads")
	rounds := fs.Int("rounds", 10, "timed rounds of each")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *host == "" || *identity == "" || *knownHosts == "" || *rounds < 1 {
		return fmt.Errorf("%w: --host, --identity and --known-hosts are required", errUsage)
	}
	type mode struct {
		Name      string         `json:"name"`
		FirstCall float64        `json:"first_call_ms"` // connect + first command
		FirstPut  float64        `json:"first_put_ms,omitempty"`
		Run       *roundTripsRep `json:"run"`
		Put       *roundTripsRep `json:"put,omitempty"`
		Stats     ssh.Stats      `json:"stats"`
	}
	var rep []mode
	for _, perCommand := range []bool{false, true} {
		d, err := ssh.NewDialer(ssh.Config{User: *user, IdentityFile: *identity, KnownHosts: *knownHosts, PerCommandSessions: perCommand})
		if err != nil {
			return err
		}
		m := mode{Name: "shell session (upload in session)"}
		if perCommand {
			m.Name = "session per command (upload by SFTP)"
		}
		start := time.Now()
		cl, err := d.Dial(ctx, *host)
		if err != nil {
			return err
		}
		if err := cl.Run(ctx, "true", io.Discard); err != nil {
			return err
		}
		m.FirstCall = ms(time.Since(start))
		rt, err := timeRounds(*rounds, func() error { return cl.Run(ctx, "true", io.Discard) })
		if err != nil {
			return fmt.Errorf("%s: run: %w", m.Name, err)
		}
		m.Run = &roundTripsRep{rt.N, rt.MedianMS, rt.P90MS}
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
			rt, err := timeRounds(*rounds, put)
			if err != nil {
				return fmt.Errorf("%s: put: %w", m.Name, err)
			}
			m.Put = &roundTripsRep{rt.N, rt.MedianMS, rt.P90MS}
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

type roundTripsRep struct {
	N        int     `json:"n"`
	MedianMS float64 `json:"median_ms"`
	P90MS    float64 `json:"p90_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
