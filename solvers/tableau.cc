#include "solvers/tableau.h"

#include <stdexcept>

#include <boost/fusion/include/at_c.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta4.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_cash_karp54.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_fehlberg78.hpp>

namespace diffeoflow {
namespace {

namespace odeint = boost::numeric::odeint;

ButcherTableau Empty(int s) {
  ButcherTableau t;
  t.stages = s;
  t.c.assign(s, 0.0);
  t.b.assign(s, 0.0);
  t.a.assign(s, std::vector<double>(s, 0.0));
  return t;
}

template <class Row>
void SetRow(ButcherTableau& t, int i, const Row& row) {
  for (int j = 0; j < static_cast<int>(row.size()); ++j) t.a[i][j] = row[j];
}

template <class Array>
std::vector<double> ToVector(const Array& array) {
  return std::vector<double>(array.begin(), array.end());
}

ButcherTableau MakeEuler() {
  ButcherTableau t = Empty(1);
  t.b[0] = 1.0;
  return t;
}

ButcherTableau MakeMidpoint() {
  ButcherTableau t = Empty(2);
  t.c = {0.0, 0.5};
  t.a[1][0] = 0.5;
  t.b = {0.0, 1.0};
  return t;
}

ButcherTableau MakeRk4() {
  ButcherTableau t = Empty(4);
  SetRow(t, 1, odeint::rk4_coefficients_a1<double>());
  SetRow(t, 2, odeint::rk4_coefficients_a2<double>());
  SetRow(t, 3, odeint::rk4_coefficients_a3<double>());
  t.b = ToVector(odeint::rk4_coefficients_b<double>());
  t.c = ToVector(odeint::rk4_coefficients_c<double>());
  return t;
}

ButcherTableau MakeCashKarp() {
  ButcherTableau t = Empty(6);
  SetRow(t, 1, odeint::rk54_ck_coefficients_a1<double>());
  SetRow(t, 2, odeint::rk54_ck_coefficients_a2<double>());
  SetRow(t, 3, odeint::rk54_ck_coefficients_a3<double>());
  SetRow(t, 4, odeint::rk54_ck_coefficients_a4<double>());
  SetRow(t, 5, odeint::rk54_ck_coefficients_a5<double>());
  t.b = ToVector(odeint::rk54_ck_coefficients_b<double>());
  t.c = ToVector(odeint::rk54_ck_coefficients_c<double>());
  return t;
}

ButcherTableau MakeFehlberg78() {
  ButcherTableau t = Empty(13);
  SetRow(t, 1, odeint::rk78_coefficients_a1<double>());
  SetRow(t, 2, odeint::rk78_coefficients_a2<double>());
  SetRow(t, 3, odeint::rk78_coefficients_a3<double>());
  SetRow(t, 4, odeint::rk78_coefficients_a4<double>());
  SetRow(t, 5, odeint::rk78_coefficients_a5<double>());
  SetRow(t, 6, odeint::rk78_coefficients_a6<double>());
  SetRow(t, 7, odeint::rk78_coefficients_a7<double>());
  SetRow(t, 8, odeint::rk78_coefficients_a8<double>());
  SetRow(t, 9, odeint::rk78_coefficients_a9<double>());
  SetRow(t, 10, odeint::rk78_coefficients_a10<double>());
  SetRow(t, 11, odeint::rk78_coefficients_a11<double>());
  SetRow(t, 12, odeint::rk78_coefficients_a12<double>());
  t.b = ToVector(odeint::rk78_coefficients_b<double>());
  t.c = ToVector(odeint::rk78_coefficients_c<double>());
  return t;
}

// Dormand–Prince 5(4): the 5th-order solution; the 7th stage (FSAL, error estimate only) has b = 0.
ButcherTableau MakeDopri5() {
  ButcherTableau t = Empty(7);
  t.c = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
  t.a[1] = {1.0 / 5, 0, 0, 0, 0, 0, 0};
  t.a[2] = {3.0 / 40, 9.0 / 40, 0, 0, 0, 0, 0};
  t.a[3] = {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0, 0};
  t.a[4] = {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0, 0};
  t.a[5] = {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0, 0};
  t.a[6] = {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0};
  t.b = {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0.0};
  return t;
}

}  // namespace

const ButcherTableau& TableauFor(Method method) {
  static const ButcherTableau euler = MakeEuler();
  static const ButcherTableau midpoint = MakeMidpoint();
  static const ButcherTableau rk4 = MakeRk4();
  static const ButcherTableau dopri5 = MakeDopri5();
  static const ButcherTableau cash_karp = MakeCashKarp();
  static const ButcherTableau fehlberg = MakeFehlberg78();
  switch (method) {
    case Method::kEuler: return euler;
    case Method::kMidpoint: return midpoint;
    case Method::kRk4: return rk4;
    case Method::kDopri5: return dopri5;
    case Method::kCashKarp54: return cash_karp;
    case Method::kFehlberg78: return fehlberg;
  }
  throw std::logic_error("TableauFor: unknown method");
}

}  // namespace diffeoflow
