#include <gtest/gtest.h>

#include <algorithm>

#include "environments/service_spec.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

using namespace testfleet;
using namespace testfleet::environments;

namespace {

Placeholders sample() {
  Placeholders values;
  values.ports = {{"port", 41000}, {"admin", 41001}};
  values.dir = "/tmp/run/group-2/web";
  values.group = 2;
  values.run_id = "r42";
  values.secret = "0123abcd";
  return values;
}

std::string usage_error(const ServiceConfig& config) {
  try {
    service_from_config(config);
  } catch (const UsageError& error) {
    return error.what();
  }
  return "no error";
}

}  // namespace

TEST(ExpandPlaceholders, EveryPlaceholder) {
  EXPECT_EQ(
      expand_placeholders("{host}:{port} admin {port:admin} in {dir} group {group} of {run_id} with {secret}",
                          sample()),
      "127.0.0.1:41000 admin 41001 in /tmp/run/group-2/web group 2 of r42 with 0123abcd");
}

TEST(ExpandPlaceholders, BracesThatAreNotPlaceholders) {
  EXPECT_EQ(expand_placeholders("{{port}} ${HOME} {\"a\": 1} f() { x; }", sample()),
            "{port} ${HOME} {\"a\": 1} f() { x; }");
}

TEST(ExpandPlaceholders, UnknownPlaceholdersAreErrors) {
  EXPECT_THROW(expand_placeholders("--port {prot}", sample()), UsageError);
  EXPECT_THROW(expand_placeholders("--port {port:nope}", sample()), UsageError);
  EXPECT_THROW(expand_placeholders("--port {port", sample()), UsageError);
  EXPECT_THROW(expand_placeholders("--x {dir:a}", sample()), UsageError);
  Placeholders no_ports = sample();
  no_ports.ports.clear();
  EXPECT_THROW(expand_placeholders("{port}", no_ports), UsageError);
  try {
    expand_placeholders("--port {prot}", sample());
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find("unknown placeholder {prot} in '--port {prot}'"),
              std::string::npos);
  }
}

TEST(BuiltinServices, PostgresSettingsAndVariables) {
  ServiceSpec spec = postgres_service();
  EXPECT_EQ(spec.kind, ServiceKind::kPostgres);
  EXPECT_EQ(spec.readiness, ReadinessKind::kPostgres);
  EXPECT_TRUE(spec.unprivileged);
  EXPECT_EQ(spec.package, "postgresql");
  EXPECT_TRUE(spec.socket.empty());
  Placeholders values = sample();
  values.ports = {{"port", 5555}};
  std::string joined = util::join(expand_placeholders(spec.command, values), " ");
  EXPECT_NE(joined.find("-D /tmp/run/group-2/web/data -p 5555 -c unix_socket_directories= "),
            std::string::npos)
      << joined;
  for (const char* setting :
       {"listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off"}) {
    EXPECT_NE(joined.find(setting), std::string::npos) << setting;
  }
  EXPECT_EQ(expand_placeholders(spec.variables.at("DATABASE_URL"), values),
            "postgres://postgres:0123abcd@127.0.0.1:5555/postgres");
  EXPECT_EQ(spec.variables.at("PGPASSWORD"), "{secret}");
  EXPECT_EQ(spec.variables.size(), 6u);
}

TEST(BuiltinServices, PostgresOnASocketOnly) {
  ServiceSpec spec = postgres_service(ListenMode::kSocket);
  EXPECT_TRUE(spec.ports.empty());
  Placeholders values = sample();
  values.ports.clear();
  EXPECT_EQ(expand_placeholders(spec.socket, values), "/tmp/run/group-2/web/.s.PGSQL.5432");
  std::string joined = util::join(expand_placeholders(spec.command, values), " ");
  EXPECT_NE(joined.find("-p 5432 -c unix_socket_directories=/tmp/run/group-2/web -c listen_addresses= -c "
                        "unix_socket_permissions=0700"),
            std::string::npos)
      << joined;
  EXPECT_EQ(expand_placeholders(spec.variables.at("DATABASE_URL"), values),
            "postgres://postgres:0123abcd@/postgres?host=/tmp/run/group-2/web");
  EXPECT_EQ(expand_placeholders(spec.variables.at("PGHOST"), values), "/tmp/run/group-2/web");
  EXPECT_EQ(spec.variables.at("PGPORT"), "5432");
}

TEST(BuiltinServices, RedisSettingsAndPasswordInAFile) {
  ServiceSpec spec = redis_service();
  EXPECT_EQ(spec.package, "redis-server");
  EXPECT_EQ(spec.command, (std::vector<std::string>{"redis-server", "{dir}/redis.conf"}));
  Placeholders values = sample();
  std::string conf = expand_placeholders(spec.files.at("redis.conf"), values);
  for (const char* line : {"\nport 41000\nbind 127.0.0.1\n", "\nrequirepass 0123abcd\n", "\nsave \"\"\n",
                           "\nappendonly no\n", "\ndir \"/tmp/run/group-2/web\"\n"}) {
    EXPECT_NE(conf.find(line), std::string::npos) << line << " in\n" << conf;
  }
  EXPECT_EQ(expand_placeholders(spec.variables.at("REDIS_URL"), values),
            "redis://:0123abcd@127.0.0.1:41000/0");

  ServiceSpec socket = redis_service(ListenMode::kSocket);
  values.ports.clear();
  conf = expand_placeholders(socket.files.at("redis.conf"), values);
  EXPECT_NE(conf.find("\nport 0\nunixsocket \"/tmp/run/group-2/web/redis.sock\"\nunixsocketperm 700\n"),
            std::string::npos)
      << conf;
  EXPECT_EQ(expand_placeholders(socket.variables.at("REDIS_URL"), values),
            "unix://:0123abcd@/tmp/run/group-2/web/redis.sock?db=0");
  EXPECT_FALSE(builtin_service("mysql"));
}

TEST(ListenMode, OnlyBuiltInCommandsMoveToASocket) {
  EXPECT_EQ(parse_listen_mode("tcp"), ListenMode::kTcp);
  EXPECT_EQ(parse_listen_mode("socket"), ListenMode::kSocket);
  EXPECT_THROW(parse_listen_mode("udp"), UsageError);

  ServiceSpec moved = with_listen_mode(postgres_service(), ListenMode::kSocket);
  EXPECT_EQ(moved.command, postgres_service(ListenMode::kSocket).command);
  EXPECT_EQ(moved.variables, postgres_service(ListenMode::kSocket).variables);
  EXPECT_EQ(with_listen_mode(redis_service(), ListenMode::kTcp).command, redis_service().command);

  // The configuration's own variables stay as written: they may name the socket's directory.
  ServiceConfig renamed;
  renamed.name = "db2";
  renamed.builtin = "postgres";
  renamed.variables =
      std::map<std::string, std::string>{{"DB2_URL", "postgres://postgres:{secret}@/postgres?host={dir}"}};
  ServiceSpec db2 = with_listen_mode(service_from_config(renamed), ListenMode::kSocket);
  EXPECT_EQ(db2.socket, "{dir}/.s.PGSQL.5432");
  EXPECT_EQ(db2.variables, *renamed.variables);
  // ... but a port they name is no longer there.
  renamed.variables = std::map<std::string, std::string>{{"DB2_PORT", "{port}"}};
  try {
    with_listen_mode(service_from_config(renamed), ListenMode::kSocket);
    ADD_FAILURE() << "a variable kept a port that --listen socket takes away";
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find("service 'db2' with --listen socket has no TCP port"),
              std::string::npos)
        << error.what();
  }

  // A command of the configuration's own listens where it says, and generic services are theirs.
  ServiceConfig own;
  own.name = "redis";
  own.command = std::vector<std::string>{"redis-server", "--port", "{port}"};
  ServiceSpec kept = with_listen_mode(service_from_config(own), ListenMode::kSocket);
  EXPECT_EQ(kept.command, *own.command);
  EXPECT_TRUE(kept.socket.empty());
  EXPECT_EQ(kept.variables, redis_service().variables);
  ServiceConfig web;
  web.name = "web";
  web.command = std::vector<std::string>{"serve", "{port}"};
  EXPECT_EQ(with_listen_mode(service_from_config(web), ListenMode::kSocket).command, *web.command);
}

TEST(ServiceFromConfig, SecretsStayOffCommandLines) {
  ServiceConfig config;
  config.name = "vault";
  config.origin = "testfleet.toml [services.vault]";
  config.command = std::vector<std::string>{"vault", "--token={secret}"};
  EXPECT_NE(usage_error(config).find("testfleet.toml [services.vault]: {secret} in a command line"),
            std::string::npos)
      << usage_error(config);
  config.command = std::vector<std::string>{"vault", "--port", "{port}"};
  config.ready_command = std::vector<std::string>{"vault-ping", "{secret}"};
  EXPECT_NE(usage_error(config).find("{secret} in a command line"), std::string::npos) << usage_error(config);
  // In the environment and the variables it belongs; {{secret}} is no placeholder at all.
  config.ready_command = std::vector<std::string>{"vault-ping", "{{secret}}"};
  config.environment = {{"VAULT_TOKEN", "{secret}"}};
  config.variables = std::map<std::string, std::string>{{"VAULT_URL", "http://:{secret}@{host}:{port}"}};
  ServiceSpec spec = service_from_config(config);
  EXPECT_EQ(spec.environment.at("VAULT_TOKEN"), "{secret}");
}

TEST(ServiceFromConfig, GenericServiceDefaults) {
  ServiceConfig config;
  config.name = "web";
  config.command = std::vector<std::string>{"python3", "-m", "http.server", "{port}"};
  config.variables = std::map<std::string, std::string>{{"WEB_URL", "http://{host}:{port}/"}};
  ServiceSpec spec = service_from_config(config);
  EXPECT_EQ(spec.kind, ServiceKind::kGeneric);
  EXPECT_EQ(spec.readiness, ReadinessKind::kTcp);
  EXPECT_EQ(spec.ports, std::vector<std::string>{"port"});
  EXPECT_FALSE(spec.unprivileged);
}

TEST(ServiceFromConfig, BuiltinWithRenamedVariables) {
  ServiceConfig config;
  config.name = "postgres";
  config.variables =
      std::map<std::string, std::string>{{"DB_URL", "postgresql://postgres@{host}:{port}/postgres"}};
  config.ready_timeout = 2.5;
  ServiceSpec spec = service_from_config(config);
  EXPECT_EQ(spec.kind, ServiceKind::kPostgres);
  EXPECT_EQ(spec.command, postgres_service().command);
  EXPECT_EQ(spec.variables.size(), 1u);
  EXPECT_EQ(spec.ready_timeout, std::chrono::milliseconds(2500));

  ServiceConfig second;
  second.name = "cache2";
  second.builtin = "redis";
  second.variables = std::map<std::string, std::string>{{"SECOND_REDIS_URL", "redis://127.0.0.1:{port}/0"}};
  ServiceSpec cache = service_from_config(second);
  EXPECT_EQ(cache.kind, ServiceKind::kRedis);
  EXPECT_EQ(cache.name, "cache2");
}

TEST(ServiceFromConfig, ReadinessChoices) {
  ServiceConfig config;
  config.name = "worker";
  config.command = std::vector<std::string>{"worker", "--dir", "{dir}"};
  config.ports = std::vector<std::string>{};
  config.ready_command = std::vector<std::string>{"test", "-e", "{dir}/ready"};
  ServiceSpec spec = service_from_config(config);
  EXPECT_EQ(spec.readiness, ReadinessKind::kCommand);
  EXPECT_TRUE(spec.ports.empty());

  config.ready_command.reset();
  EXPECT_NE(usage_error(config).find("ready = \"tcp\" needs a port"), std::string::npos)
      << usage_error(config);
  config.ready = "command";
  EXPECT_NE(usage_error(config).find("needs ready_command"), std::string::npos);
  config.ready = "http";
  EXPECT_NE(usage_error(config).find("ready = \"http\" is not one of"), std::string::npos);
  config.ports = std::vector<std::string>{"db"};
  config.ready = "postgres";
  EXPECT_EQ(service_from_config(config).readiness, ReadinessKind::kPostgres);
}

TEST(ServiceFromConfig, ErrorsNameOriginAndField) {
  ServiceConfig config;
  config.name = "web";
  config.origin = "testfleet.toml [services.web]";
  EXPECT_EQ(usage_error(config),
            "testfleet.toml [services.web]: a service needs a command, e.g. command = \"python3 -m "
            "http.server {port}\"");
  config.command = std::vector<std::string>{"serve", "--port", "{prot}"};
  EXPECT_NE(usage_error(config).find("testfleet.toml [services.web]: unknown placeholder {prot}"),
            std::string::npos)
      << usage_error(config);
  config.command = std::vector<std::string>{"serve", "--port", "{port:admin}"};
  EXPECT_NE(usage_error(config).find("unknown port 'admin'"), std::string::npos);
  config.command = std::vector<std::string>{"serve"};
  config.variables = std::map<std::string, std::string>{{"1BAD", "x"}};
  EXPECT_NE(usage_error(config).find("'1BAD' is not a valid variable name"), std::string::npos);
  config.variables.reset();
  config.ports = std::vector<std::string>{"a", "a"};
  EXPECT_NE(usage_error(config).find("port name 'a' appears twice"), std::string::npos);
  config.ports.reset();
  config.ready_timeout = -1;
  EXPECT_NE(usage_error(config).find("ready_timeout = -1 must be a positive number"), std::string::npos);
  config.ready_timeout.reset();
  config.builtin = "mysql";
  EXPECT_NE(usage_error(config).find("builtin = \"mysql\""), std::string::npos);
  config.builtin.reset();
  config.name = "has space";
  EXPECT_NE(usage_error(config).find("service name 'has space'"), std::string::npos);
}

TEST(CheckServices, NamesAndVariablesAreUnique) {
  EXPECT_NO_THROW(check_services({postgres_service(), redis_service()}));
  ServiceSpec escaping = redis_service();
  escaping.files = {{"../redis.conf", "x"}};
  EXPECT_THROW(check_services({escaping}), UsageError);
  EXPECT_THROW(check_services({redis_service(), redis_service()}), UsageError);
  ServiceSpec second = redis_service();
  second.name = "cache2";
  try {
    check_services({redis_service(), second});
    ADD_FAILURE() << "no error";
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find("both export REDIS_URL"), std::string::npos) << error.what();
  }
}
