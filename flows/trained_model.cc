#include "flows/trained_model.h"

#include <algorithm>

#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::flows {

Matrix TrainedModel::Probabilities(const Matrix& x, Index batch, int threads) const {
  if (shooting) {
    Matrix p(classes, x.cols());
    for (Index start = 0; start < x.cols(); start += batch) {
      const Index n = std::min(batch, x.cols() - start);
      p.middleCols(start, n) = Softmax(shooting->Logits(x.middleCols(start, n)));
    }
    return p;
  }
  Classifier model(network->spec, threads);
  return Softmax(model.Logits(network->theta, x, batch));
}

TrainedModel ReadTrainedModel(const std::string& path) {
  std::string kind;
  {
    const h5::Reader in(path);
    const bool classifier = in.HasAttribute("/", "format") &&
                            in.StringAttribute("/", "format") == "diffeoflow-classifier";
    const bool shooting = in.HasAttribute("/", "model") && in.StringAttribute("/", "model") == "shooting";
    if (!classifier && !shooting) {
      const std::string format =
          in.HasAttribute("/", "format") ? " (format " + in.StringAttribute("/", "format") + ")" : "";
      throw InputError(path + ": not a classifier written by diffeoflow train" + format +
                       "; expected DIR/model.h5 from train");
    }
    if (shooting) kind = "shooting";
  }
  TrainedModel m;
  if (kind == "shooting") {
    m.shooting = ReadShootingClassifier(path);
    m.kind = kind;
    m.input_shape = {m.shooting->input_dim};
    m.classes = m.shooting->classes;
    const h5::Reader in(path);
    m.data = ReadDataRecord(in);
    return m;
  }
  m.network = ReadModel(path);
  m.kind = ModelKindName(m.network->spec.kind);
  m.input_shape = m.network->spec.input_shape;
  m.classes = m.network->spec.classes;
  m.data = m.network->data;
  return m;
}

}  // namespace diffeoflow::flows
