package plans

import (
	"fmt"
	"reflect"
	"testing"
)

func fleet(n int) []Host {
	hs := make([]Host, n)
	for i := range hs {
		hs[i] = Host{Name: fmt.Sprintf("h%d", i+1), Address: fmt.Sprintf("10.0.0.%d:22", i+1), Transport: TransportSSH}
	}
	return hs
}

func count(n int) Size   { return Size{N: n} }
func percent(n int) Size { return Size{N: n, Percent: true} }

func TestBatches(t *testing.T) {
	cases := []struct {
		name  string
		hosts int
		ramp  []Size
		want  []int
	}{
		{"batch 2 over 6", 6, []Size{count(2)}, []int{2, 2, 2}},
		{"25% over 6 rounds up", 6, []Size{percent(25)}, []int{2, 2, 2}},
		{"ramp 1, 5, 20% over 10", 10, []Size{count(1), count(5), percent(20)}, []int{1, 5, 2, 2}},
		{"ramp bigger than the fleet", 5, []Size{count(2), count(10), count(4)}, []int{2, 3}},
		{"7 hosts batch 3", 7, []Size{count(3)}, []int{3, 3, 1}},
		{"default one at a time", 3, nil, []int{1, 1, 1}},
		{"100% is everything at once", 4, []Size{percent(100)}, []int{4}},
		{"1% of a small fleet is one host", 3, []Size{percent(1)}, []int{1, 1, 1}},
		{"canary then half", 3, []Size{count(1), percent(50)}, []int{1, 2}},
		{"batch larger than the fleet", 3, []Size{count(10)}, []int{3}},
		{"last percentage repeats", 9, []Size{count(1), percent(30)}, []int{1, 3, 3, 2}},
		{"a zero size never makes an empty batch", 2, []Size{count(0)}, []int{1, 1}},
		{"single host", 1, []Size{percent(50)}, []int{1}},
		{"no hosts", 0, []Size{count(2)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Plan{Hosts: fleet(tc.hosts), Strategy: Strategy{Batches: tc.ramp}}
			got := p.Batches()
			var sizes []int
			var order []Host
			for _, b := range got {
				sizes = append(sizes, len(b))
				order = append(order, b...)
			}
			if !reflect.DeepEqual(sizes, tc.want) {
				t.Errorf("sizes = %v, want %v", sizes, tc.want)
			}
			if tc.hosts > 0 && !reflect.DeepEqual(order, p.Hosts) {
				t.Errorf("batches do not keep plan order: %v", order)
			}
		})
	}
}

func TestBatchesDoNotAliasHosts(t *testing.T) {
	p := &Plan{Hosts: fleet(4), Strategy: Strategy{Batches: []Size{count(2)}}}
	b := p.Batches()
	b[0] = append(b[0], Host{Name: "intruder"})
	b[0][0].Name = "changed"
	if p.Hosts[0].Name != "h1" || p.Hosts[2].Name != "h3" {
		t.Errorf("Batches shares memory with Hosts: %+v", p.Hosts)
	}
}

func TestMaxFailures(t *testing.T) {
	cases := []struct {
		hosts int
		size  Size
		want  int
	}{
		{6, count(0), 0},
		{6, count(2), 2},
		{6, percent(10), 1},
		{6, percent(50), 3},
		{3, percent(100), 3},
		{3, count(9), 3}, // never more than the fleet (Parse refuses it anyway)
		{0, percent(50), 0},
	}
	for _, tc := range cases {
		p := &Plan{Hosts: fleet(tc.hosts), Strategy: Strategy{MaxFailures: tc.size}}
		if got := p.MaxFailures(); got != tc.want {
			t.Errorf("%d hosts, max_failures %s: got %d, want %d", tc.hosts, tc.size, got, tc.want)
		}
	}
}

func TestBatchesFromParsedPlans(t *testing.T) {
	hosts := "hosts:\n"
	for i := 1; i <= 10; i++ {
		hosts += fmt.Sprintf("  - {name: web%d, address: 10.0.0.%d}\n", i, i)
	}
	cases := []struct {
		strategy string
		want     []int
	}{
		{"strategy: {batch: 2}\n", []int{2, 2, 2, 2, 2}},
		{"strategy: {batch: \"25%\"}\n", []int{3, 3, 3, 1}},
		{"strategy: {batches: [1, 5, \"20%\"]}\n", []int{1, 5, 2, 2}},
		{"", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tc := range cases {
		f := newFixture(t, nil)
		p, err := f.parse(head + hosts + tail + tc.strategy)
		if err != nil {
			t.Fatalf("%q: %s", tc.strategy, f.problems(t, err))
		}
		var sizes []int
		for _, b := range p.Batches() {
			sizes = append(sizes, len(b))
		}
		if !reflect.DeepEqual(sizes, tc.want) {
			t.Errorf("%q: sizes = %v, want %v", tc.strategy, sizes, tc.want)
		}
	}
}
