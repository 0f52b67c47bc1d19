// plgpeer: the hashicorp/go-plugin side of plg's isolation benchmarks (issue 10 section 6).
// `plgpeer bench N` starts itself as a go-plugin plugin twice (net/rpc, then gRPC) and
// prints one JSON object: ns per no-op round trip over net/rpc and over gRPC, ns per gRPC
// round trip carrying an 8-key map (plg.v1 Execute, the same message plg sends), start to
// first reply for each, and a bare Go Unix-socket ping-pong. Built by
// scripts/build-go-sample.sh's GOPATH layout (see loader/benches/isolation.rs).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"greet-go/plgv1"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "PLGPEER_COOKIE",
	MagicCookieValue: "peer",
}

// net/rpc: a no-op method.
type Noop struct{}

func (Noop) Call(args int, reply *int) error { *reply = args; return nil }

type rpcPlugin struct{}

func (rpcPlugin) Server(*plugin.MuxBroker) (interface{}, error) { return Noop{}, nil }
func (rpcPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return c, nil
}

// gRPC: plg.v1.Plugin, whose Execute returns the values it gets.
type echo struct{ plgv1.UnimplementedPluginServer }

func (echo) Execute(_ context.Context, r *plgv1.ExecuteRequest) (*plgv1.ExecuteResponse, error) {
	return &plgv1.ExecuteResponse{Outcome: &plgv1.ExecuteResponse_Values{Values: r.Values}}, nil
}

type grpcPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	plgv1.RegisterPluginServer(s, echo{})
	return nil
}
func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return plgv1.NewPluginClient(c), nil
}

var rpcPlugins = map[string]plugin.Plugin{"rpc": rpcPlugin{}}
var grpcPlugins = map[string]plugin.Plugin{"grpc": grpcPlugin{}}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// rounds runs f n times per round, 5 rounds, and returns the median round's ns per call.
func rounds(n int, f func()) float64 {
	var per []float64
	for r := 0; r < 5; r++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			f()
		}
		per = append(per, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	return median(per)
}

// start launches the plugin and dispenses its client; the caller times it with its first call.
func start(proto plugin.Protocol) (*plugin.Client, interface{}) {
	plugins, mode := rpcPlugins, "serve-rpc"
	if proto == plugin.ProtocolGRPC {
		plugins, mode = grpcPlugins, "serve-grpc"
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugins,
		Cmd:              exec.Command(os.Args[0], mode),
		AllowedProtocols: []plugin.Protocol{proto},
		Logger:           hclog.NewNullLogger(),
	})
	rpcClient, err := client.Client()
	if err != nil {
		panic(err)
	}
	name := "rpc"
	if proto == plugin.ProtocolGRPC {
		name = "grpc"
	}
	raw, err := rpcClient.Dispense(name)
	if err != nil {
		panic(err)
	}
	return client, raw
}

func eightKeys() *plgv1.ValueMap {
	m := &plgv1.ValueMap{}
	for i := 0; i < 8; i++ {
		m.Entries = append(m.Entries, &plgv1.Entry{
			Key:   "key" + strconv.Itoa(i),
			Value: &plgv1.Value{Kind: &plgv1.Value_Str{Str: "value number " + strconv.Itoa(i)}},
		})
	}
	return m
}

// pingPong: a bare Unix-socket round trip of 8 bytes between two goroutines' ends.
func pingPong(n int) float64 {
	dir, _ := os.MkdirTemp("", "plgpeer")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		panic(err)
	}
	go func() {
		c, _ := l.Accept()
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			c.Write(buf)
		}
	}()
	c, _ := net.Dial("unix", path)
	buf := make([]byte, 8)
	return rounds(n, func() {
		c.Write(buf)
		io.ReadFull(c, buf)
	})
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve-rpc" {
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: handshake,
			Plugins:         rpcPlugins,
			Logger:          hclog.NewNullLogger(),
		})
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-grpc" {
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: handshake,
			Plugins:         grpcPlugins,
			GRPCServer:      plugin.DefaultGRPCServer,
			Logger:          hclog.NewNullLogger(),
		})
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "starts" {
		// `plgpeer starts K`: K gRPC starts, each to its first call's reply, in ns.
		k, _ := strconv.Atoi(os.Args[2])
		var ns []int64
		for i := 0; i < k; i++ {
			began := time.Now()
			client, raw := start(plugin.ProtocolGRPC)
			empty := &plgv1.ExecuteRequest{Values: &plgv1.ValueMap{}}
			if _, err := raw.(plgv1.PluginClient).Execute(context.Background(), empty); err != nil {
				panic(err)
			}
			ns = append(ns, time.Since(began).Nanoseconds())
			client.Kill()
		}
		b, _ := json.Marshal(ns)
		fmt.Println(string(b))
		return
	}
	n := 20000
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	out := map[string]float64{}

	// Start to first call: the median of 21 starts, each timed from NewClient to the first
	// call's reply (the first call opens go-plugin's connection and stream state).
	var rpcStarts, grpcStarts []float64
	for i := 0; i < 21; i++ {
		began := time.Now()
		client, raw := start(plugin.ProtocolNetRPC)
		var reply int
		if err := raw.(*rpc.Client).Call("Plugin.Call", 1, &reply); err != nil {
			panic(err)
		}
		rpcStarts = append(rpcStarts, float64(time.Since(began).Nanoseconds()))
		client.Kill()
		began = time.Now()
		client, raw = start(plugin.ProtocolGRPC)
		empty := &plgv1.ExecuteRequest{Values: &plgv1.ValueMap{}}
		if _, err := raw.(plgv1.PluginClient).Execute(context.Background(), empty); err != nil {
			panic(err)
		}
		grpcStarts = append(grpcStarts, float64(time.Since(began).Nanoseconds()))
		client.Kill()
	}
	out["netrpc_start_to_first_ns"] = median(rpcStarts)
	out["grpc_start_to_first_ns"] = median(grpcStarts)

	rpcClient, raw := start(plugin.ProtocolNetRPC)
	c := raw.(*rpc.Client)
	var reply int
	if err := c.Call("Plugin.Call", 1, &reply); err != nil {
		panic(err)
	}
	out["netrpc_noop_ns"] = rounds(n, func() { c.Call("Plugin.Call", 1, &reply) })
	rpcClient.Kill()

	grpcClient, raw := start(plugin.ProtocolGRPC)
	g := raw.(plgv1.PluginClient)
	empty := &plgv1.ExecuteRequest{Values: &plgv1.ValueMap{}}
	if _, err := g.Execute(context.Background(), empty); err != nil {
		panic(err)
	}
	out["grpc_noop_ns"] = rounds(n, func() { g.Execute(context.Background(), empty) })
	eight := &plgv1.ExecuteRequest{Values: eightKeys()}
	out["grpc_8key_ns"] = rounds(n, func() { g.Execute(context.Background(), eight) })
	grpcClient.Kill()

	out["go_unix_pingpong_ns"] = pingPong(n * 5)
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
