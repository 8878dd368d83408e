// The one translation unit that compiles Asio, Asio's SSL support and Beast
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION are set for every user of
// civicflow::asio). Beast headers are slow to build on 2 cores: this keeps them to one file.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
