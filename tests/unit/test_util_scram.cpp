#include <gtest/gtest.h>

#include <string>

#include "util/error.hpp"
#include "util/scram.hpp"
#include "util/strings.hpp"

using namespace testfleet;
using namespace testfleet::util;

// RFC 7677 section 3: the whole exchange for user "user", password "pencil", with the RFC's nonce.
TEST(ScramSha256Client, Rfc7677Exchange) {
  ScramSha256Client client("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(client.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(client.client_final(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_TRUE(client.server_final_valid("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  // A server that does not know the password cannot sign.
  EXPECT_FALSE(client.server_final_valid("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
  EXPECT_THROW(client.server_final_valid("e=invalid-proof"), InfrastructureError);
}

TEST(ScramSha256Client, RefusesMalformedAndForeignServerMessages) {
  ScramSha256Client client("", "pw", "abc");
  EXPECT_EQ(client.client_first(), "n,,n=,r=abc");
  EXPECT_THROW(client.client_final("r=abcdef,s=c2FsdA=="), InfrastructureError);         // no count
  EXPECT_THROW(client.client_final("r=xyz123,s=c2FsdA==,i=4096"), InfrastructureError);  // not our nonce
  EXPECT_THROW(client.client_final("r=abc,s=c2FsdA==,i=4096"), InfrastructureError);     // nothing added
  EXPECT_THROW(client.client_final("r=abcdef,s=not*base64,i=4096"), InfrastructureError);
  EXPECT_THROW(client.client_final("r=abcdef,s=c2FsdA==,i=0"), InfrastructureError);
  EXPECT_THROW(client.client_final("r=abcdef,s=c2FsdA==,i=4000000000"), InfrastructureError);
  // Before a valid first message there is nothing to check a signature against.
  EXPECT_FALSE(client.server_final_valid("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
}

TEST(ScramSha256Client, RandomNoncesDiffer) {
  ScramSha256Client one("", "pw");
  ScramSha256Client two("", "pw");
  EXPECT_NE(one.client_first(), two.client_first());
  EXPECT_EQ(one.client_first().find(','), 1u);
  EXPECT_EQ(one.client_first().substr(0, 7), "n,,n=,r");
}

// The keys a server stores for RFC 7677's password and salt (computed independently with Python's hashlib).
TEST(ScramSha256Keys, StoredKeyAndServerKey) {
  ScramKeys keys = scram_sha256_keys("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  EXPECT_EQ(base64_encode(keys.stored_key), "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
  EXPECT_EQ(base64_encode(keys.server_key), "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
}

TEST(Base64, RoundTripsAndRefusesWhatIsNotBase64) {
  for (const std::string& bytes : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                                   std::string("foob"), std::string("\0\xff\x80", 3)}) {
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
  }
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_FALSE(base64_decode("Zm9vYg="));
  EXPECT_FALSE(base64_decode("Zm=vYg=="));
  EXPECT_FALSE(base64_decode("Zm9v\nYg=="));
  EXPECT_FALSE(base64_decode("===="));
}
