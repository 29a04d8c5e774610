// Enrollment by the browser's camera (getUserMedia): the snapshot is put into the form's file
// input and submitted like an uploaded photo. No inline script (CSP).
(function () {
  "use strict";
  function setup() {
    var start = document.getElementById("camera-start");
    var form = document.getElementById("enroll-form");
    if (!start || !form || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      if (start) start.hidden = true;
      return;
    }
    var box = document.getElementById("camera");
    var video = document.getElementById("camera-video");
    var canvas = document.getElementById("camera-canvas");
    var input = document.getElementById("enroll-photo");
    var stream = null;
    start.addEventListener("click", function () {
      if (!stream) {
        navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
          .then(function (s) {
            stream = s;
            video.srcObject = s;
            box.hidden = false;
            start.textContent = start.dataset.labelTake;
          })
          .catch(function () { start.hidden = true; });
        return;
      }
      canvas.width = video.videoWidth || 640;
      canvas.height = video.videoHeight || 480;
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        var dt = new DataTransfer();
        dt.items.add(new File([blob], "camera.jpg", { type: "image/jpeg" }));
        input.files = dt.files;
        stream.getTracks().forEach(function (t) { t.stop(); });
        form.submit();
      }, "image/jpeg", 0.92);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
