// Loads the greet Go plugin with plugin.Open, finds Greet with plugin.Lookup, and times
// calls: ROUNDS rounds of CALLS calls each, printing the median ns per call on stdout.
package main

import (
	"fmt"
	"os"
	"plugin"
	"sort"
	"strconv"
	"time"
)

func main() {
	p, err := plugin.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sym, err := p.Lookup("Greet")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	greet := sym.(func(map[string]interface{}) error)
	calls, _ := strconv.Atoi(os.Args[2])
	rounds, _ := strconv.Atoi(os.Args[3])
	ctx := map[string]interface{}{"name": "Ada"}
	var per []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < calls; i++ {
			if err := greet(ctx); err != nil {
				panic(err)
			}
		}
		per = append(per, float64(time.Since(start).Nanoseconds())/float64(calls))
	}
	if ctx["greeting"] != "hello Ada" {
		panic("wrong greeting")
	}
	sort.Float64s(per)
	fmt.Printf("%.2f\n", per[len(per)/2])
}
