package haproxy

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// statRow is what the driver reads from one server line of `show stat`.
type statRow struct {
	backend, server string
	status          string // as HAProxy prints it: "UP", "UP 1/3", "DRAIN", "MAINT", "no check", ...
	checkStatus     string // last health check result ("L4OK", "L7STS", ...), empty without checks
	scur, qcur      int
	// Traffic counters (analysis gates); 0 where HAProxy leaves them empty.
	reqTot, hrsp5xx, eresp, econ int64
	rtimeMS                      int64 // average response time of the last 1024 responses
}

// parseStat parses `show stat` CSV output and returns its server rows
// (FRONTEND and BACKEND summary rows are skipped). Columns are found by the
// names in the header line ("# pxname,svname,..."), never by position, so
// the parser survives HAProxy adding columns.
func parseStat(reply string) ([]statRow, error) {
	header, body, ok := strings.Cut(reply, "\n")
	if !ok || !strings.HasPrefix(header, "# ") {
		if err := replyError(reply); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: show stat: no CSV header", ErrUnexpectedReply)
	}
	cols := map[string]int{}
	for i, name := range strings.Split(strings.TrimPrefix(header, "# "), ",") {
		if name != "" {
			cols[name] = i
		}
	}
	for _, need := range []string{"pxname", "svname", "status", "scur", "qcur"} {
		if _, ok := cols[need]; !ok {
			return nil, fmt.Errorf("%w: show stat: no %q column", ErrUnexpectedReply, need)
		}
	}
	r := csv.NewReader(strings.NewReader(body))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	records, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: show stat: %v", ErrUnexpectedReply, err)
	}
	field := func(rec []string, name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []statRow
	for _, rec := range records {
		sv := field(rec, "svname")
		if sv == "" || sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		row := statRow{
			backend:     field(rec, "pxname"),
			server:      sv,
			status:      field(rec, "status"),
			checkStatus: field(rec, "check_status"),
		}
		if row.scur, err = atoi0(field(rec, "scur")); err != nil {
			return nil, fmt.Errorf("%w: show stat: %s/%s scur: %v", ErrUnexpectedReply, row.backend, sv, err)
		}
		if row.qcur, err = atoi0(field(rec, "qcur")); err != nil {
			return nil, fmt.Errorf("%w: show stat: %s/%s qcur: %v", ErrUnexpectedReply, row.backend, sv, err)
		}
		for _, c := range []struct {
			name string
			to   *int64
		}{{"req_tot", &row.reqTot}, {"hrsp_5xx", &row.hrsp5xx}, {"eresp", &row.eresp}, {"econ", &row.econ}, {"rtime", &row.rtimeMS}} {
			n, err := atoi0(field(rec, c.name))
			if err != nil {
				return nil, fmt.Errorf("%w: show stat: %s/%s %s: %v", ErrUnexpectedReply, row.backend, sv, c.name, err)
			}
			*c.to = int64(n)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// atoi0 parses a counter; HAProxy leaves a counter empty when it does not apply.
func atoi0(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

// Bits of srv_admin_state in `show servers state` (HAProxy's SRV_ADMF_*).
const (
	admFMaint = 0x01 // forced maintenance (CLI / stats page)
	admIMaint = 0x02 // inherited from a tracked server
	admCMaint = 0x04 // `disabled` in the configuration
	admFDrain = 0x08 // forced drain (CLI)
	admIDrain = 0x10 // inherited drain
	admRMaint = 0x20 // DNS resolution failed
	admHMaint = 0x40 // hostname-based maintenance
)

const admMaintMask = admFMaint | admIMaint | admCMaint | admRMaint | admHMaint

// adminFromBits maps srv_admin_state to an AdminState; maintenance wins.
func adminFromBits(bits int) AdminState {
	switch {
	case bits&admMaintMask != 0:
		return AdminMaint
	case bits&(admFDrain|admIDrain) != 0:
		return AdminDrain
	}
	return AdminReady
}

// parseServersState parses `show servers state` (a version line, a header
// "# be_id be_name srv_id srv_name ...", then space-separated rows) into a
// map from "backend/server" to its admin state.
func parseServersState(reply string) (map[string]AdminState, error) {
	lines := strings.Split(strings.TrimRight(reply, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "# ") {
		if err := replyError(reply); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: show servers state: no header", ErrUnexpectedReply)
	}
	cols := map[string]int{}
	for i, name := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		cols[name] = i
	}
	be, okB := cols["be_name"]
	sv, okS := cols["srv_name"]
	adm, okA := cols["srv_admin_state"]
	if !okB || !okS || !okA {
		return nil, fmt.Errorf("%w: show servers state: missing be_name, srv_name or srv_admin_state", ErrUnexpectedReply)
	}
	out := map[string]AdminState{}
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) <= max(be, sv, adm) {
			return nil, fmt.Errorf("%w: show servers state: short row %q", ErrUnexpectedReply, line)
		}
		bits, err := strconv.Atoi(f[adm])
		if err != nil {
			return nil, fmt.Errorf("%w: show servers state: srv_admin_state %q", ErrUnexpectedReply, f[adm])
		}
		out[f[be]+"/"+f[sv]] = adminFromBits(bits)
	}
	return out, nil
}

// isUp reports whether an HAProxy status means the server takes new
// traffic: "UP", "UP x/y" (up, but not at full health: x more failed checks
// would take it down), "UP (agent)" and "no check" (a server without health
// checks is up once it is neither in maintenance nor draining). "DRAIN",
// "NOLB", "MAINT", "DOWN" and "DOWN x/y" are not up.
func isUp(status string) bool {
	if status == "no check" {
		return true
	}
	first, _, _ := strings.Cut(status, " ")
	return first == "UP"
}

// isConfirmedUp is isUp at full health: "UP" (or "no check"), not "UP x/y".
//
// This matters right after `set server B/S state ready`: HAProxy pauses
// health checks while a server is in MAINT, and on leaving MAINT it puts the
// server at "UP x/y" (the lowest health that is still up) whatever its last
// check said, then checks it at once. A passing check makes it "UP"; a
// failing one makes it "DOWN". Only "UP" proves the restarted app answered
// HAProxy's own check.
func isConfirmedUp(status string) bool {
	if !isUp(status) {
		return false
	}
	_, rest, _ := strings.Cut(status, " ")
	return !strings.Contains(rest, "/")
}
