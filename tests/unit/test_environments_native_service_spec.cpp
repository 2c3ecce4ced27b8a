#include <gtest/gtest.h>

#include <algorithm>

#include "environments/service_spec.hpp"
#include "util/error.hpp"

using namespace testfleet;
using namespace testfleet::environments;

namespace {

Placeholders sample() {
  Placeholders values;
  values.ports = {{"port", 41000}, {"admin", 41001}};
  values.dir = "/tmp/run/group-2/web";
  values.group = 2;
  values.run_id = "r42";
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
      expand_placeholders("{host}:{port} admin {port:admin} in {dir} group {group} of {run_id}", sample()),
      "127.0.0.1:41000 admin 41001 in /tmp/run/group-2/web group 2 of r42");
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
  Placeholders values = sample();
  values.ports = {{"port", 5555}};
  std::vector<std::string> command = expand_placeholders(spec.command, values);
  std::string joined;
  for (const std::string& word : command) joined += word + " ";
  EXPECT_NE(joined.find("-D /tmp/run/group-2/web/data -p 5555 -c unix_socket_directories= "),
            std::string::npos);
  for (const char* setting : {"fsync=off", "synchronous_commit=off", "full_page_writes=off"}) {
    EXPECT_NE(joined.find(setting), std::string::npos) << setting;
  }
  EXPECT_EQ(expand_placeholders(spec.variables.at("DATABASE_URL"), values),
            "postgres://postgres:postgres@127.0.0.1:5555/postgres");
  EXPECT_EQ(spec.variables.size(), 6u);
}

TEST(BuiltinServices, RedisWithoutPersistence) {
  ServiceSpec spec = redis_service();
  EXPECT_EQ(spec.package, "redis-server");
  std::vector<std::string> expected_tail = {"--save", "", "--appendonly", "no"};
  EXPECT_NE(std::search(spec.command.begin(), spec.command.end(), expected_tail.begin(), expected_tail.end()),
            spec.command.end());
  Placeholders values = sample();
  EXPECT_EQ(expand_placeholders(spec.variables.at("REDIS_URL"), values), "redis://127.0.0.1:41000/0");
  EXPECT_FALSE(builtin_service("mysql"));
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
