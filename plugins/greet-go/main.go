// greet-go: the hello sample as a Go plugin written with hashicorp/go-plugin's plugin.Serve.
// plg hosts it as it is: go-plugin's handshake (the magic cookie, one stdout line) and gRPC
// over a Unix socket, serving plg.v1.Plugin (PROTOCOL.md) beside go-plugin's own services and
// the grpc.health.v1 service plugin.Serve registers.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"greet-go/plgv1"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// The handshake plg's hosts use (PROTOCOL.md, section 1).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "PLG_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "d5e1c0f4b2a7plg",
}

var logger = hclog.New(&hclog.LoggerOptions{
	Name:       "greet-go",
	Output:     os.Stderr,
	JSONFormat: true,
})

type greeter struct {
	plgv1.UnimplementedPluginServer
}

func (greeter) Describe(context.Context, *plgv1.DescribeRequest) (*plgv1.DescribeResponse, error) {
	return &plgv1.DescribeResponse{Name: "greet-go", Version: "0.1.0", ProtocolVersion: 1}, nil
}

func (greeter) Execute(ctx context.Context, req *plgv1.ExecuteRequest) (*plgv1.ExecuteResponse, error) {
	values := req.GetValues()
	if values == nil {
		values = &plgv1.ValueMap{}
	}
	name := "world"
	for _, e := range values.Entries {
		if e.Key != "name" {
			continue
		}
		s, ok := e.Value.GetKind().(*plgv1.Value_Str)
		if !ok {
			return &plgv1.ExecuteResponse{Outcome: &plgv1.ExecuteResponse_Error{Error: &plgv1.PluginError{
				Kind:    plgv1.PluginError_INVALID_INPUT,
				Message: "`name` must be a string",
			}}}, nil
		}
		name = s.Str
	}
	logger.Info(fmt.Sprintf("greeting %s", name))
	greeting := &plgv1.Value{Kind: &plgv1.Value_Str{Str: fmt.Sprintf("Hello, %s!", name)}}
	replaced := false
	for _, e := range values.Entries {
		if e.Key == "greeting" {
			e.Value, replaced = greeting, true
		}
	}
	if !replaced {
		values.Entries = append(values.Entries, &plgv1.Entry{Key: "greeting", Value: greeting})
	}
	return &plgv1.ExecuteResponse{Outcome: &plgv1.ExecuteResponse_Values{Values: values}}, nil
}

func (greeter) Shutdown(context.Context, *plgv1.ShutdownRequest) (*plgv1.ShutdownResponse, error) {
	go func() {
		time.Sleep(10 * time.Millisecond)
		os.Exit(0)
	}()
	return &plgv1.ShutdownResponse{}, nil
}

// plgPlugin is go-plugin's side: it registers plg.v1.Plugin on go-plugin's gRPC server.
type plgPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (plgPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	plgv1.RegisterPluginServer(s, greeter{})
	return nil
}

func (plgPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, fmt.Errorf("greet-go is a plugin, not a host")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         map[string]plugin.Plugin{"plg": plgPlugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
